"""A structured initialization of the Wan VAE backbone that starts training from the area-downsampling baseline.

Why: from a random initialization the Wan-2.1 VAE needs many thousands of steps before its reconstructions beat even
the no-learning `downsample` baseline, far more than the CPU budget of the bundled checkpoint allows. This
initialization sets the SAME architecture's weights so that, before any training:
  * every residual branch is zero (conv2 = 0, attention projections = 0: zero-init residuals, so each block starts as
    its shortcut) and shortcuts embed channels one-to-one;
  * the encoder's stride-2 convs average 2x2 pixels, its temporal convs average frame pairs (frame 0 stays alone:
    the causal grouping of the 4x8x8 latent), so latent channels 0-2 hold the clip's RGB area means;
  * the decoder repeats each latent cell over its 4x8x8 block (nearest up-sampling in space and time);
  * the RMS norms at both heads are made nearly linear by a large constant channel (channel 3), added by the bias of
    the last residual conv before each head only (a constant flowing through every layer would make each zero
    weight that reads it a bias with a huge effective learning rate), with gains small enough that the following
    SiLU works in its linear range; the output convs undo the scale.
The quantizer's last level emits either thermometer bits (one sign stage: sign(c - t) for thresholds t per colour,
`init_lapq_last_level`) or, with residual sign stages, successive-approximation codes of the clip's principal colour
directions (`init_successive_bits`: S stages give each bit channel 2^S levels, which thresholds cannot: k signs of a
3-D colour cut it into at most 1 + k + C(k,2) + C(k,3) cells). `init_binary_readout` then fits a least-squares
linear read-out from the quantized values to the colours in the decoder's first conv.
"""
from __future__ import annotations

import torch
import torch.nn as nn

K = 10.0  # the constant channel's value
ANCHOR_GAIN = 0.01  # gain of the constant channel after a norm: it normalizes, but barely feeds the next layer
GAIN = 0.3  # RMS-norm gain on colour channels, so SiLU(v) ~ v / 2 (a smaller gain is more linear, but Adam then
# moves the gain by a large fraction of itself each step: measured, 150 steps from 0.03 ended 0.2 dB under 0.3)


def _identity_conv(conv: nn.Module, scale: float = 1.0, time_tap: int | None = None) -> None:
    """Zero the conv, then map input channel c to output channel c (c < min(in, out)) at the spatial centre and at
    `time_tap` (default: the last, i.e. the current frame of a causal kernel)."""
    w = conv.weight
    with torch.no_grad():
        w.zero_()
        if conv.bias is not None:
            conv.bias.zero_()
        n = min(w.shape[0], w.shape[1])
        idx = [slice(None), slice(None)] + [s // 2 for s in w.shape[2:]]
        if w.dim() == 5:
            idx[2] = w.shape[2] - 1 if time_tap is None else time_tap
        for c in range(n):
            w[(c, c, *idx[2:])] = scale


def init_backbone_as_downsample(vae) -> None:
    from diffusers.models.autoencoders.autoencoder_kl_wan import (WanAttentionBlock, WanCausalConv3d, WanResample,
                                                                  WanResidualBlock, WanRMS_norm)

    for module in vae.modules():
        if isinstance(module, WanResidualBlock):
            nn.init.zeros_(module.conv2.weight)
            nn.init.zeros_(module.conv2.bias)
            if isinstance(module.conv_shortcut, WanCausalConv3d):
                _identity_conv(module.conv_shortcut)
        elif isinstance(module, WanAttentionBlock):
            nn.init.zeros_(module.proj.weight)
            nn.init.zeros_(module.proj.bias)
        elif isinstance(module, WanResample):
            conv = module.resample[-1] if isinstance(module.resample, nn.Sequential) else None
            if module.mode.startswith("downsample"):
                with torch.no_grad():
                    conv.weight.zero_()
                    conv.bias.zero_()
                    for c in range(conv.weight.shape[0]):
                        conv.weight[c, c, :2, :2] = 0.25  # the 2x2 block mean (the pad is bottom/right only)
                if module.mode == "downsample3d":
                    with torch.no_grad():
                        module.time_conv.weight.zero_()
                        module.time_conv.bias.zero_()
                        for c in range(module.time_conv.weight.shape[0]):
                            module.time_conv.weight[c, c, 1:, 0, 0] = 0.5  # [cache, a, b] -> (a + b) / 2
            elif module.mode.startswith("upsample"):
                _identity_conv(conv)
                if module.mode == "upsample3d":
                    tc = module.time_conv
                    with torch.no_grad():
                        tc.weight.zero_()
                        tc.bias.zero_()
                        half = tc.weight.shape[0] // 2
                        for c in range(half):
                            tc.weight[c, c, -1, 0, 0] = 1.0  # both output frames copy the current frame
                            tc.weight[half + c, c, -1, 0, 0] = 1.0
    enc, dec = vae.encoder, vae.decoder
    _identity_conv(enc.conv_in)
    with torch.no_grad():  # the constant channel, added just before each head norm
        enc.mid_block.resnets[-1].conv2.bias[3] = K
        last = [m for m in dec.up_blocks[-1].modules() if isinstance(m, WanResidualBlock)][-1]
        last.conv2.bias[3] = K
    for norm in (enc.norm_out, dec.norm_out):
        assert isinstance(norm, WanRMS_norm)
        with torch.no_grad():
            norm.gamma.fill_(1.0)
            norm.gamma[:3] = GAIN
            norm.gamma[3] = ANCHOR_GAIN  # else every weight reading it is a bias with a huge learning rate
    # after the head norm a colour channel is ~ scale * GAIN * c / K, then SiLU halves it
    for conv, dim in ((enc.conv_out, enc.norm_out.gamma.shape[0]), (dec.conv_out, dec.norm_out.gamma.shape[0])):
        gain = 1.0 / (0.5 * dim ** 0.5 * GAIN / K)
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.zero_()
            for c in range(3):
                conv.weight[c, c, -1, conv.weight.shape[3] // 2, conv.weight.shape[4] // 2] = gain
    _identity_conv(vae.quant_conv)
    _identity_conv(vae.post_quant_conv)
    _identity_conv(dec.conv_in)


THRESHOLDS = (-0.6, -0.3, 0.0, 0.3, 0.6)
ANCHOR = 16.0  # the two anchor dimensions of the last LaPQ level: a LayerNorm then scales colours by ~1 - |c|^2 / 1000


def init_lapq_last_level(block, bits: int) -> None:
    """The last LaPQ level (reading the latent): colours pass its lateral conv and both LayerNorms almost linearly
    (two large anchor dimensions dominate the normalization) and become thermometer bits sign(c - t)."""
    with torch.no_grad():
        _identity_conv(block.lateral)
        block.lateral.bias[3], block.lateral.bias[4] = ANCHOR, -ANCHOR
        block.out_norm.weight[3:5] = ANCHOR_GAIN
        if block.prev is not None:
            block.prev.weight.zero_()
            block.prev.bias.zero_()
        if getattr(block, "attend_text", False):
            block.attn.out_proj.weight.zero_()
            block.attn.out_proj.bias.zero_()
        block.to_bits.weight.zero_()
        block.to_bits.bias.zero_()
        j = 0
        for c in range(3):
            for t in THRESHOLDS:
                if j < bits:
                    block.to_bits.weight[j, c] = 1.0
                    block.to_bits.bias[j] = -t
                    j += 1
        for r in range(j, bits):  # spare bits: split on colour differences
            a, b = r % 3, (r + 1) % 3
            block.to_bits.weight[r, a], block.to_bits.weight[r, b] = 1.0, -1.0


@torch.no_grad()
def init_successive_bits(to_bits: nn.Linear, inputs: torch.Tensor, stages: int, colours: int = 3,
                         rows: int | None = None) -> None:
    """Fit `to_bits` (reading `inputs`, (N, dim) samples of its input) so that each bit channel is one principal
    colour direction of the inputs, spread over the full range of `stages` residual sign stages: the calibration
    range of the projection, widened by a quarter on each side (other clips hold other colours), maps onto [-2, 2],
    whose 2^S cells of width 4 / 2^S are the stages' levels. Channels beyond the number of colours go to the
    direction with the coarsest cells and are staggered by a fraction of a cell, so the read-out averages them into
    finer steps. With `rows`, only the first `rows` bit channels code colour; the others start at zero (free for
    what a later module brings, e.g. PyraTok's semantic trunk)."""
    k = rows or to_bits.out_features
    mean = inputs.mean(0)
    _, _, vh = torch.linalg.svd(inputs - mean, full_matrices=False)
    dirs = vh[:min(colours, k)]
    proj = (inputs - mean) @ dirs.T
    lo, hi = proj.amin(0), proj.amax(0)
    lo, hi = lo - 0.25 * (hi - lo), hi + 0.25 * (hi - lo)
    span = (hi - lo).clamp_min(1e-6)
    count = [1] * len(dirs)
    for _ in range(k - len(dirs)):
        count[int(torch.argmax(span / torch.tensor(count, dtype=span.dtype)))] += 1
    cell = 4.0 / 2 ** stages
    to_bits.weight.zero_()
    to_bits.bias.zero_()
    j = 0
    for i, n in enumerate(count):
        a = 4.0 / float(span[i])
        for m in range(n):
            to_bits.weight[j] = a * dirs[i]
            to_bits.bias[j] = -a * float(dirs[i] @ mean) - a * float(lo[i]) - 2.0 + cell * m / n
            j += 1


@torch.no_grad()
def init_binary_readout(model, calib: torch.Tensor) -> float:
    """Least-squares linear map from the last level's bits to the latent colours it came from, written into the
    decoder's first conv (colour channels; channel 3 keeps the constant). Returns the read-out's RMS error."""
    q = model.quantize(calib, None)  # the model's own path (a PyraTok with a semantic trunk passes it too)
    value = model.post_quant(q.quantized)
    target = model.backbone.encode_taps(calib, ["latent"])["latent"][:, :3]
    x = value.movedim(1, -1).reshape(-1, value.shape[1])
    y = target.movedim(1, -1).reshape(-1, 3)
    # bit channels constant on the calibration clips (e.g. the ones `colour_bits` leaves at zero) get no weight: a
    # minimum-norm solution would share the intercept with them, and they would shift the colours once they move
    x = torch.where(x.std(0) > 0, x, torch.zeros_like(x))
    a = torch.cat([x, torch.ones(len(x), 1)], 1)
    sol = torch.linalg.lstsq(a, y, driver="gelsd").solution  # (k + 1, 3); SVD: exact for rank-deficient x too
    conv = model.backbone.vae.post_quant_conv
    dec_in = model.backbone.vae.decoder.conv_in
    w = dec_in.weight
    w.zero_()
    dec_in.bias.zero_()
    # post_quant_conv is the identity: decoder conv_in reads the bits directly at its current-frame centre tap
    assert torch.equal(conv.weight.flatten(1)[:, :conv.weight.shape[0]], torch.eye(conv.weight.shape[0]))
    for c in range(3):
        w[c, :x.shape[1], -1, 1, 1] = sol[:-1, c]
        dec_in.bias[c] = sol[-1, c]
    return float(((a @ sol - y) ** 2).mean().sqrt())
