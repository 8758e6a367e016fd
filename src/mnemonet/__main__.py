"""``python -m mnemonet`` (and ``torchrun ... -m mnemonet train ...``) runs the command line."""

from mnemonet.cli import main

if __name__ == "__main__":
    main()
