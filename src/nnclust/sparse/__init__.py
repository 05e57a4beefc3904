"""Sparse models and model surgery: parameter selection, model mixing, the vulcanizer, the tracker."""
