"""genretag for beets: the genre of each track, from listening to it.

During ``beet import`` (and with ``beet genretag [QUERY]``) the plugin runs
``genretag classify --jsonl`` on the items' files and stores the genre it is sure of in
beets' ``genre`` field (and, with ``confidence: yes``, the calibrated probability in a
``genretag_confidence`` flexible field). When genretag is *unsure* of a track (too little
sound, no genre probable enough, unlike the music it learned from) the item is left as
it is: a wrong genre in a library is worse than none. (beets 2.14 and later keep genres
in the list field ``genres``; earlier versions in ``genre``: both are handled.)

Configuration (``config.yaml``)::

    plugins: genretag
    pluginpath: /path/to/genretag/integrations/beets/beetsplug
    genretag:
        auto: yes          # classify during import
        binary: genretag   # the genretag executable
        model: ''          # a model trained with `genretag train` (default: shipped)
        min_prob: ''       # override the model's threshold (0-1); '' = the model's own
        force: no          # replace genres items already have
        confidence: yes    # store genretag_confidence
"""

import json
import os
import subprocess

from beets import config, ui
from beets.library import Item
from beets.plugins import BeetsPlugin
from beets.util import displayable_path

# beets 2.14 and later keep genres in a list field, `genres`; earlier ones in `genre`.
MULTI_GENRE = "genres" in Item.all_keys()


def _path_key(obj):
    """The exact path bytes of a genretag JSON line (``path_bytes`` when the name is
    not UTF-8, else ``path``)."""
    hex_bytes = obj.get("path_bytes")
    if hex_bytes:
        return bytes.fromhex(hex_bytes)
    return os.fsencode(obj["path"])


class GenretagPlugin(BeetsPlugin):
    """Genres from genretag's listening, honouring its "unsure"."""

    def __init__(self):
        super().__init__()
        self.config.add(
            {
                "auto": True,
                "binary": "genretag",
                "model": "",
                "min_prob": "",
                "force": False,
                "confidence": True,
            }
        )
        # Items this plugin changed during the current import, by id: written into
        # their files once beets has put the files in place (never the source files of
        # a copy-mode import).
        self._changed = set()
        if self.config["auto"].get(bool):
            self.import_stages = [self.imported]
            self.register_listener("import_task_files", self.files_in_place)

    # -- beets entry points -------------------------------------------------------

    def commands(self):
        cmd = ui.Subcommand(
            "genretag", help="set genres from listening to the music (genretag)"
        )
        cmd.parser.add_option(
            "-f",
            "--force",
            action="store_true",
            default=None,
            help="replace genres items already have",
        )
        cmd.parser.add_option(
            "-w",
            "--write",
            action="store_true",
            default=None,
            help="also write the genre into the files (default: import.write)",
        )

        def func(lib, opts, args):
            items = list(lib.items(args))
            force = opts.force if opts.force is not None else self.config["force"].get(bool)
            changed = self.tag_items(items, force)
            write = opts.write if opts.write is not None else ui.should_write()
            for item in changed:
                if write:
                    item.try_write()
                item.store()

        cmd.func = func
        return [cmd]

    def imported(self, session, task):
        # Runs before beets copies or moves the files: set the fields only.
        force = self.config["force"].get(bool)
        for item in self.tag_items(list(task.imported_items()), force):
            item.store()
            self._changed.add(item.id)

    def files_in_place(self, session, task):
        # The files are where the library keeps them now. Autotagged imports write
        # their tags themselves; as-is imports (`-A`) do not, so write ours when the
        # import is configured to write.
        write = config["import"]["write"].get(bool)
        for item in task.imported_items():
            if item.id in self._changed:
                self._changed.discard(item.id)
                if write:
                    item.try_write()

    # -- the work -----------------------------------------------------------------

    def classify(self, paths):
        """Run genretag on ``paths`` (bytes); returns {path bytes: track line}."""
        cmd = [self.config["binary"].as_str(), "classify", "--jsonl", "--files-from", "-", "-0"]
        model = self.config["model"].as_str()
        if model:
            cmd += ["--model", model]
        min_prob = self.config["min_prob"].get()
        if min_prob is not None and str(min_prob).strip() != "":
            cmd += ["--min-prob", str(min_prob)]
        try:
            proc = subprocess.run(
                cmd,
                input=b"\0".join(paths) + b"\0",
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                check=False,
            )
        except OSError as e:
            raise ui.UserError(
                "cannot run genretag ({}): {} (set genretag.binary in the config)".format(
                    cmd[0], e
                )
            )
        if proc.returncode not in (0, 1):
            raise ui.UserError(
                "genretag failed ({}): {}".format(
                    proc.returncode, proc.stderr.decode("utf-8", "replace").strip()
                )
            )
        results = {}
        for line in proc.stdout.splitlines():
            if not line.strip():
                continue
            obj = json.loads(line)
            if obj.get("type") == "track":
                results[_path_key(obj)] = obj
        return results

    def tag_items(self, items, force):
        """Set the genre of ``items`` genretag is sure of; returns the changed items."""
        todo = [i for i in items if force or not (i.get("genres") or i.get("genre"))]
        if not todo:
            return []
        results = self.classify([bytes(i.path) for i in todo])
        changed = []
        for item in todo:
            res = results.get(bytes(item.path))
            name = displayable_path(item.path)
            if res is None:
                self._log.warning("genretag gave no answer for {}", name)
                continue
            if not res.get("ok"):
                self._log.warning("genretag could not read {}: {}", name, res.get("error"))
                continue
            decision = res.get("decision") or {}
            if decision.get("kind") != "genre":
                self._log.info(
                    "unsure of {} ({}): genre left as it is",
                    name,
                    decision.get("reason", "no decision"),
                )
                continue
            label = decision["label"]
            genre = next(
                (g["name"] for g in res.get("genres", []) if g["label"] == label), label
            )
            if MULTI_GENRE:
                item.genres = [genre]
            else:
                item.genre = genre
            if self.config["confidence"].get(bool):
                item["genretag_confidence"] = float(decision["probability"])
            self._log.info("{}: {} ({:.0%})", name, genre, decision["probability"])
            changed.append(item)
        return changed
