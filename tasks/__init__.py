"""Built-in tasks and data sets, as lazy "module:Object" strings (importing this package imports nothing heavy)."""

TASKS = {
    "ucf101-recon": "tasks.ucf101:UCF101Recon",
}

DATASETS = {
    "ucf101": "tasks.ucf101:UCF101",
}
