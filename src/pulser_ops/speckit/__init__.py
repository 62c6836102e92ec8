"""Spec kits in GitHub Spec Kit's format: generate them, validate them, report on them.

- :mod:`.upstream`  the pinned Spec Kit templates (vendored) and what they require;
- :mod:`.layout`    the plan's ``spec/<project>/`` and Spec Kit's ``.specify`` + ``specs/``;
- :mod:`.model`, :mod:`.generate`   params in, filled documents + ``spec-kit.zip`` out;
- :mod:`.source`    reading a folder, zip or git ref safely; :mod:`.validate` + :mod:`.rules`;
- :mod:`.report`    the versioned JSON report (``report.schema.json``), Markdown, annotations;
- :mod:`.github_comment`, :mod:`.workflow`   the pull request check;
- :mod:`.handlers`  the ``generate_spec_kit`` / ``validate_spec_kit`` python step handlers.

The CLI (``pulser-ops speckit``) and the run types share all of it. docs/SPEC_KIT.md explains.
"""
