"""Model factories a user might write (`train.model: user_models:<name>`), for tests: called as
factory(n_inputs, n_outputs, trial_settings) -> nn.Module, once per trial of a pack."""
from torch import nn


def two_layer(n_in, n_out, cfg):
    """A plain MLP: torch.func packs K of these into one vectorised model."""
    return nn.Sequential(nn.Linear(n_in, 32), nn.GELU(), nn.Linear(32, n_out))


# -- mistakes a user makes in a factory (tests/test_bad_inputs.py: each is one line at parse time)
def raises(n_in, n_out, cfg):
    raise ValueError("no layer size for this data")


def not_a_module(n_in, n_out, cfg):
    return "nn.Linear(n_in, n_out)"


def two_arguments(n_in, n_out):
    return nn.Linear(n_in, n_out)


def another_width(n_in, n_out, cfg):
    return nn.Sequential(nn.Linear(n_in + 3, 16), nn.ReLU(), nn.Linear(16, n_out))


def one_output_too_many(n_in, n_out, cfg):
    return nn.Sequential(nn.Linear(n_in, 16), nn.ReLU(), nn.Linear(16, n_out + 1))


def nan_weights(n_in, n_out, cfg):
    import torch

    net = nn.Linear(n_in, n_out)
    with torch.no_grad():
        net.weight[0, 0] = float("nan")
    return net


def reads_dropout(n_in, n_out, cfg):
    """Reads `dropout` (and nothing else of the settings): only that model setting is searched."""
    return nn.Sequential(nn.Linear(n_in, 32), nn.ReLU(), nn.Dropout(cfg["dropout"]), nn.Linear(32, n_out))
