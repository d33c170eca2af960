"""Built-in tasks and data sets, as lazy "module:Object" strings (importing this package imports nothing heavy)."""

TASKS = {
    "ucf101-recon": "tasks.ucf101:UCF101Recon",
    "k600-recon": "tasks.kinetics:K600Recon",
    "webvid-recon": "tasks.webvid:WebVidRecon",
    "mcljcv-recon": "tasks.mcljcv:MCLJCVRecon",
    "coco-recon": "tasks.coco:COCORecon",
    "davis": "tasks.davis_vos:DavisVOS",
    "ytvis21": "tasks.ytvis_seg:YTVISTextSegmentation",
    "thumos14": "tasks.tal:Thumos14TAL",
    "activitynet": "tasks.tal:ActivityNetTAL",
    "ssv2": "tasks.video_classification:SSv2Classification",
    "k400-cls": "tasks.video_classification:K400Classification",
    "k600-cls": "tasks.video_classification:K600Classification",
    "k700-cls": "tasks.video_classification:K700Classification",
    "msrvtt-retrieval": "tasks.retrieval:MSRVTTRetrieval",
    "msrvtt-t2v": "tasks.t2v:MSRVTTT2V",
    "anetcap-t2v": "tasks.t2v:ANetCapT2V",
    "ucf101-gen": "tasks.ucf101_gen:UCF101Gen",
}

DATASETS = {
    "ucf101": "tasks.ucf101:UCF101",
    "davis2017": "tasks.davis2017:Davis2017",
    "ytvis2021": "tasks.ytvis2021:YTVIS2021",
    "thumos14": "tasks.thumos14:Thumos14",
    "activitynet": "tasks.activitynet:ActivityNet",
    "k400": "tasks.kinetics:Kinetics400",
    "k600": "tasks.kinetics:Kinetics600",
    "k700": "tasks.kinetics:Kinetics700",
    "webvid": "tasks.webvid:WebVid",
    "msrvtt": "tasks.msrvtt:MSRVTT",
    "ssv2": "tasks.ssv2:SSv2",
    "coco": "tasks.coco:COCOData",
    "mcljcv": "tasks.mcljcv:MCLJCV",
}
