"""elbokit.nn.networks: shapes through leading sample axes, head splitting, and the
linear decoder's data-driven start (FA's, as its docstring promises)."""

import pytest

torch = pytest.importorskip("torch")

from elbokit.nn.likelihoods import Bernoulli, Gaussian  # noqa: E402
from elbokit.nn.networks import (ConvDecoder, ConvEncoder, LinearDecoder, MLPDecoder,  # noqa: E402
                                 MLPEncoder, mlp)


def test_mlp_puts_relu_between_layers_only():
    net = mlp([5, 7, 3])
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU", "Linear"]
    assert len(mlp([5, 3])) == 1  # no hidden layer: one linear map
    x = torch.randn(4, 5)
    linear = mlp([5, 3])[0]
    torch.testing.assert_close(linear(x), x @ linear.weight.T + linear.bias)


@pytest.mark.parametrize("make_encoder, make_decoder, d", [
    (lambda: MLPEncoder(64, (16,), 3), lambda h: MLPDecoder(3, (16,), 64, h), 64),
    (lambda: ConvEncoder((8, 8), 3, channels=(4, 6)),
     lambda h: ConvDecoder((8, 8), 3, h, channels=(4, 6)), 64),
    (lambda: MLPEncoder(10, (), 3), lambda h: LinearDecoder(3, 10, h), 10),
])
@pytest.mark.parametrize("n_heads", [1, 2])
def test_shapes_and_leading_sample_axes(make_encoder, make_decoder, d, n_heads):
    torch.manual_seed(0)
    encoder, decoder = make_encoder(), make_decoder(n_heads)
    x = torch.rand(5, d)
    mean, logvar = encoder(x)
    assert mean.shape == logvar.shape == (5, 3)
    z = torch.randn(4, 5, 3)  # (S, B, L)
    heads = decoder(z)
    assert len(heads) == n_heads and all(h.shape == (4, 5, d) for h in heads)
    # the sample axis passes through: decoding each sample alone gives the same maps
    for s in range(4):
        for head, alone in zip(heads, decoder(z[s])):
            torch.testing.assert_close(head[s], alone)


def test_linear_decoder_starts_at_the_data_moments():
    torch.manual_seed(1)
    X = torch.rand(200, 6) * torch.tensor([0.1, 0.5, 1.0, 2.0, 3.0, 0.01])
    gaussian = Gaussian(min_variance=1e-3)
    decoder = LinearDecoder(2, 6, n_heads=2)
    weight_before = decoder.linear.weight.clone()
    decoder.init_from_data(X, gaussian)
    torch.testing.assert_close(decoder.linear.bias, X.mean(0))
    torch.testing.assert_close(decoder.linear.weight, 0.01 * weight_before)
    variance = gaussian.variance(decoder.raw_variance)
    expected = torch.maximum(X.var(0), torch.tensor(1.01e-3))  # floor + 1e-2 floor at least
    torch.testing.assert_close(variance, expected, rtol=1e-5, atol=1e-7)
    # Bernoulli: the bias is the logit of the pixel means (clamped away from 0 and 1)
    pixels = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    bernoulli = LinearDecoder(2, 3, n_heads=1)
    bernoulli.init_from_data(pixels, Bernoulli())
    p = torch.sigmoid(bernoulli.linear.bias)
    torch.testing.assert_close(p, torch.tensor([1e-3, 0.5, 1 - 1e-3]))
