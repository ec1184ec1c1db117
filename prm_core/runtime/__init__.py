"""Runtime, a leaf-level utility: where tensors run (device checks, bf16 autocast), progress bars,
stopping child process groups.
Multi-GPU placement comes from accelerate or Ray, not from here.
May import: nothing else in prm_core."""
