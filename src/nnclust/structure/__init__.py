"""Structure of a network as a graph: connectivity (reachability), function-preserving
transforms (batch-norm folding, ReLU rescaling) and the CSR weight graph."""
