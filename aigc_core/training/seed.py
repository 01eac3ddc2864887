"""One seed for every random source, so CPU runs repeat exactly."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    # Only affects subprocesses (DataLoader workers); hashing in this process is fixed at start-up.
    os.environ["PYTHONHASHSEED"] = str(seed)
