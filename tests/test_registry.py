import sys
import types

import pytest

from harness.registry import Registry, UnknownNameError


def test_lazy_entries_import_nothing_until_asked(monkeypatch):
    mod = types.ModuleType("fake_heavy_module")
    mod.Thing = object()
    reg = Registry("thing", builtins=lambda: {"heavy": "fake_heavy_module:Thing"})
    assert "heavy" in reg.names()
    assert "fake_heavy_module" not in sys.modules
    monkeypatch.setitem(sys.modules, "fake_heavy_module", mod)
    assert reg.get("heavy") is mod.Thing


def test_builtin_task_listing_does_not_import_task_modules():
    code = ("import sys; from harness.registry import TASKS, MODELS; TASKS.names(); MODELS.names(); "
            "bad = [m for m in ('tasks.ucf101', 'models.baselines.codec', 'av', 'decord') if m in sys.modules]; "
            "assert not bad, bad")
    import subprocess
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_name_suggests_close_matches():
    reg = Registry("task", builtins=lambda: {"ucf101-recon": "x:y", "k600-recon": "x:y", "davis": "x:y"})
    with pytest.raises(UnknownNameError) as err:
        reg.get("ucf101-rcon")
    assert "did you mean ucf101-recon" in str(err.value)


def test_duplicate_registration_is_refused_and_decorator_registers():
    reg = Registry("model", builtins=lambda: {"a": "m:A"})
    with pytest.raises(ValueError):
        reg.register("a", object())

    @reg.register("b")
    class B:
        pass

    assert reg.get("b") is B


def test_entry_point_plugins_are_loaded_and_builtins_win(monkeypatch):
    import harness.registry as r

    class EP:
        group = "pyratok_bench.models"

        def __init__(self, name, value, obj):
            self.name, self.value, self._obj = name, value, obj

        def load(self):
            return self._obj

    plugin = object()
    monkeypatch.setattr(r, "_entry_points", lambda group: [EP("plugin-model", "pkg:Plugin", plugin),
                                                           EP("identity", "pkg:Other", object())])
    reg = Registry("model", "pyratok_bench.models", lambda: {"identity": "models.baselines.identity:IdentityAdapter"})
    with pytest.warns(UserWarning, match="shadowed"):
        names = reg.names()
    assert "plugin-model" in names
    assert reg.get("plugin-model") is plugin
    from models.baselines.identity import IdentityAdapter
    assert reg.get("identity") is IdentityAdapter
