"""The stages of one login's check, each in its own module, wired by
:class:`fingerprint.checker.Checker`::

    record ─▶ decode ─▶ device verdict ─▶ enrich ─▶ session checks
                        (verdict.py)       (enrich.py) (run.py)
           ─▶ history ─▶ history checks ─▶ grade + report
              (login.py, history.py)  (run.py)  (report.py)

* **decode**: :func:`fingerprint.session.parse_session` validates the record.
* **device verdict** (:mod:`.verdict`): the device features, the device identity
  (less the device id's hash) and device-scoped check outcomes remembered for the
  device's content (ids, battery, boot and install facts left out). It comes before
  enrichment, which takes the features and identity from it on a hit.
* **enrich** (:mod:`.enrich`): user agent, City/ASN/anonymous-IP lookups, whois, and
  the derived device identity.
* **session checks** (:mod:`.run`): the checks that need nothing but the session,
  reusing the verdict's outcomes.
* **history** (:mod:`.login`, :mod:`.history`): the login as history keeps it, recorded
  with its identity links in one round trip that hands back the windows the checks
  declared (``Check.needs``) and what the links held.
* **history checks** (:mod:`.run`), then **grade and report** (:mod:`.report`).

Each stage hands the next a frozen, keyword-only record; none reaches back. Two
records are otherwise by design: the check run (:class:`.run.CheckRun`), the one
accumulator of every check's findings, and the login as history keeps it
(:class:`fingerprint.history.LoginEvent`), a named tuple the C packer reads by position.
"""
