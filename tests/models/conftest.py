import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Run the model tests on one intra-op thread: the work is small (about 10 s of CPU for the folder), and on a
    busy shared machine torch's spinning worker threads made it 7x slower in wall time. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
