"""Networks: the weight-layer record, the layer walk, checkpoints, the model registry and its validator.

Importing this package does not import torch: `nets.weight_layer` is numpy only, so that
analysis workers stay light.
"""
