"""Per-clip outputs merged by clip id: one row per clip, sorted by id, identical on every process."""
import json

import numpy as np
import pytest
import torch

from metrics.clip_outputs import ClipOutputs
from tests.conftest import run_script



@pytest.mark.bad_input
def test_repeated_clips_keep_their_first_row_and_rows_are_sorted_by_id():
    outputs = ClipOutputs()
    outputs.add(["c", "a"], score=torch.tensor([[3.0], [1.0]]), label=np.array([30, 10]))
    outputs.add(["b", "a"], score=torch.tensor([[2.0], [9.0]]), label=np.array([20, 99]))  # "a" repeated
    rows = outputs.merged()
    assert list(rows["name"]) == ["a", "b", "c"]
    assert rows["score"].tolist() == [[1.0], [2.0], [3.0]] and rows["label"].tolist() == [10, 20, 30]
    assert len(outputs) == 4  # rows added here, repeats included
    outputs.reset()
    assert len(outputs.merged()["name"]) == 0 and set(outputs.merged()) == {"name"}


def test_half_precision_is_stored_as_float32():
    outputs = ClipOutputs()
    outputs.add(["a"], score=torch.tensor([[0.5]], dtype=torch.bfloat16))
    assert outputs.merged()["score"].dtype == np.float32


@pytest.mark.bad_input
def test_fields_must_have_one_row_per_name_and_stay_the_same():
    outputs = ClipOutputs()
    with pytest.raises(ValueError, match=r"field 'score' has shape \(3,\), expected 2 rows"):
        outputs.add(["a", "b"], score=torch.zeros(3))
    outputs.add(["a"], score=torch.zeros(1))
    with pytest.raises(ValueError, match=r"fields \['other'\] differ from the earlier batches' \['score'\]"):
        outputs.add(["b"], other=torch.zeros(1))


SCRIPT = """
import json, sys
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from metrics.clip_outputs import ClipOutputs

def work(rank, out):
    dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=2)
    outputs = ClipOutputs()
    # 5 clips over 2 processes, padded to 3 each: rank 1 repeats c0, as DistributedSampler does
    names = [["c0", "c2", "c4"], ["c1", "c3", "c0"]][rank]
    outputs.add(names, score=torch.tensor([float(n[1]) for n in names]))
    rows = outputs.merged()
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump({"name": list(rows["name"]), "score": rows["score"].tolist()}, f)
    dist.destroy_process_group()

if __name__ == "__main__":
    mp.spawn(work, args=(sys.argv[1],), nprocs=2)
"""


@pytest.mark.slow
@pytest.mark.bad_input
def test_two_processes_get_the_same_rows_each_clip_once(tmp_path):
    run_script(SCRIPT, tmp_path, tmp_path, timeout=120)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1] == {"name": ["c0", "c1", "c2", "c3", "c4"], "score": [0.0, 1.0, 2.0, 3.0, 4.0]}
