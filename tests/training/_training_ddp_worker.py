"""Run by ``torchrun --nproc_per_node 2`` in test_training_distributed.py: train a tiny config, save weights."""

import faulthandler
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from mnemonet.app.run import train
from mnemonet.training.config import load_config
from mnemonet.training.distributed import env_info


def main(out: Path, config_path: str) -> None:
    torch.set_num_threads(1)
    rank = env_info().rank
    _, run = train(load_config(config_path), out=out / "run", progress="off")
    weights = {k: v.detach().contiguous() for k, v in run.model.state_dict().items()}
    save_file(weights, str(out / f"rank{rank}.safetensors"))


if __name__ == "__main__":
    faulthandler.enable()  # an abort in a rank prints its Python stack into the test's message
    main(Path(sys.argv[1]), sys.argv[2])
