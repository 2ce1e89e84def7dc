"""Support code: stack fixes, configs, checkpoints, dataset checks, complexity, the tools' shared arguments."""
