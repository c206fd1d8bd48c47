"""What every optimisation loop shares: the training loop, resume, its state, the run's files, the
loss log and curve, callbacks, settings, and the frozen loss networks made ready for autograd."""
