"""Built-in tasks and data sets, as lazy "module:Object" strings (importing this package imports nothing heavy)."""

TASKS = {
    "ucf101-recon": "tasks.ucf101:UCF101Recon",
}

DATASETS = {
    "ucf101": "tasks.ucf101:UCF101",
    "davis2017": "tasks.davis2017:Davis2017",
    "ytvis2021": "tasks.ytvis2021:YTVIS2021",
    "thumos14": "tasks.thumos14:Thumos14",
    "activitynet": "tasks.activitynet:ActivityNet",
}
