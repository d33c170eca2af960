"""Built-in model adapters, as lazy "module:Object" strings (importing this package imports nothing heavy)."""

MODELS = {
    "identity": "models.baselines.identity:IdentityAdapter",
    "downsample": "models.baselines.downsample:DownsampleAdapter",
    "h264": "models.baselines.codec:H264Adapter",
    "pyratok": "models.pyratok.adapter:PyraTokAdapter",
    "pyratok-release": "models.pyratok.release:ReleaseAdapter",
    "hevc": "models.baselines.codec:HEVCAdapter",
    "av1": "models.baselines.codec:AV1Adapter",
    "cogvideox-vae": "models.baselines.vae:CogVideoXVAE",
    "wan-vae": "models.baselines.vae:WanVAE",
    "ltx-vae": "models.baselines.vae:LTXVideoVAE",
    "hunyuan-vae": "models.baselines.vae:HunyuanVideoVAE",
    "lfq": "models.baselines.tokenizers.adapter:LFQAdapter",
    "bsq": "models.baselines.tokenizers.adapter:BSQAdapter",
    "vq": "models.baselines.tokenizers.adapter:VQAdapter",
    "rvq": "models.baselines.tokenizers.adapter:RVQAdapter",
    "fsq": "models.baselines.tokenizers.adapter:FSQAdapter",
}
