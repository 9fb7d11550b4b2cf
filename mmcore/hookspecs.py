"""Hook specifications: the documented contract between mmcore and plugins.

Every hook takes a ``register`` callback and calls it once per thing the
plugin adds (the form simonw/llm uses), so one plugin can add many things and
``register`` can gain keyword arguments without breaking released plugins.
Hooks are keyed by modality *name*, so a plugin can add a masking policy,
target or dataset to another plugin's modality without importing it.

A plugin is any module with functions marked ``@mmcore.hookimpl``, exposed
through an entry point in the group ``mmcore``::

    [project.entry-points.mmcore]
    image = "mm_image"
"""

import pluggy

hookspec = pluggy.HookspecMarker("mmcore")
hookimpl = pluggy.HookimplMarker("mmcore")


# --------------------------------------------------------------------------
# modalities and their parts
# --------------------------------------------------------------------------


@hookspec
def register_modalities(register):
    """Add modalities. Called once, when the registry is first built.

    :param register: ``register(modality)`` with a `mmcore.Modality`.
    """


@hookspec
def register_masking_policies(register):
    """Add masking policies to a modality (yours or another plugin's).

    :param register: ``register(modality_name, policy_name, policy_cls)``;
        ``policy_cls`` is a dataclass whose fields are the recipe options
        (``ratio`` at least) and whose instances are `mmcore.MaskingPolicy` s.
    """


@hookspec
def register_targets(register):
    """Add prediction targets to a modality (pixels, HOG, teacher features).

    :param register: ``register(modality_name, target_name, target_cls)``;
        ``target_cls`` is a dataclass whose fields are the recipe options and
        whose instances are `mmcore.Target` s (``dim(tokenizer)`` gives the
        head's output size).
    """


# --------------------------------------------------------------------------
# data and recipes
# --------------------------------------------------------------------------


@hookspec
def register_datasets(register):
    """Add dataset readers.

    :param register: ``register(modality_name, dataset_name, dataset_cls)``;
        ``dataset_cls`` is a dataclass of recipe options with a method
        ``build(tokenizer, split) -> torch.utils.data.Dataset`` whose items
        ``tokenizer.collate`` accepts. ``split`` is ``"train"`` or ``"test"``.
    """


@hookspec
def register_recipes(register):
    """Add runnable YAML recipes (``mm recipes ls`` lists them).

    :param register: ``register(name, path)`` with the YAML file's path.
    """


# --------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------


@hookspec
def register_commands(register):
    """Add ``mm`` subcommands that need your modality's batch keys or files.

    Called once, when the registry is first built; ``mm`` adds one subcommand
    per command after its own. Several plugins may register the *same*
    command object (text and protein share `mmcore.discrete.FILL_COMMAND`);
    a different command under a taken name marks your plugin broken, and one
    named like a core command (``train``, ``plugins``, ...) is skipped with a
    warning.

    :param register: ``register(command)`` with a `mmcore.Command`.
    """


# --------------------------------------------------------------------------
# peer libraries
# --------------------------------------------------------------------------


@hookspec
def register_peers(register):
    """Add exact conversions between your modality's models and a peer library's (``mm export --to``,
    ``mm import --from``), so the core converts a modality without importing its plugin.

    :param register: ``register(peer, modality, export=None, kind=None, import_=None)`` with ``peer``
        ``"timm"`` or ``"transformers"``. ``export(model, output) -> (folder, max_abs_difference)``
        writes ``modality``'s models as a ``peer`` folder; ``import_(folder, output) -> (folder,
        max_abs_difference, notes)`` reads the peer folders of ``kind`` (config.json's ``model_type``,
        such as ``"bert"``: transformers folders only). Both refuse what they cannot convert exactly
        with `mmcore.interop.NoExactPeer`; the core's own image, timm and ViTMAE paths apply where no
        plugin registered one.
    """
