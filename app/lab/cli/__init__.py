"""The lab's `facesvc` subcommands: eval, calibrate, train-*, explain-units."""
