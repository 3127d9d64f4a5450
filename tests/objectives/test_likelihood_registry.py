"""Likelihoods are a public registry (`vaebench.LIKELIHOODS`, docs/plugins.md): an entry is a function
of the `objective:` section that makes a `vaebench.Likelihood`; anything else is refused."""

import pytest
import torch

import vaebench
from vaebench.errors import RegistryError
from vaebench.objectives.likelihoods import build_likelihood
from vaebench.spec.sections import ObjectiveConfig


class Half(vaebench.Likelihood):
    name = "toy_half"

    def nll(self, params, x):
        return (x - params).abs().flatten(1).sum(1)

    def mean(self, params):
        return params


@pytest.fixture
def registered():
    vaebench.LIKELIHOODS.register("toy_half", lambda cfg: Half())
    vaebench.LIKELIHOODS.register("toy_not_one", lambda cfg: "not a likelihood")
    yield
    vaebench.LIKELIHOODS.unregister("toy_half")
    vaebench.LIKELIHOODS.unregister("toy_not_one")


def test_a_plugin_likelihood_is_named_in_a_spec_and_built(registered):
    likelihood = build_likelihood(ObjectiveConfig(likelihood="toy_half"))
    assert isinstance(likelihood, Half)
    assert likelihood.nll(torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)).tolist() == [4.0, 4.0]
    with pytest.raises(RegistryError, match="'toy_not_one' made a str, not a vaebench.Likelihood subclass"):
        build_likelihood(ObjectiveConfig(likelihood="toy_not_one"))


def test_a_likelihood_entry_must_make_one():
    with pytest.raises(ValueError, match="register a function objective-config -> Likelihood"):
        vaebench.LIKELIHOODS.register("toy_instance", Half())
    assert "toy_instance" not in vaebench.LIKELIHOODS
