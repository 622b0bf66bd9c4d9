"""A readable diagnosis of one report (开通失败诊断), in Chinese or English, for an
analyst (everything, with evidence and points) or for the applicant (what happened
and what they can do, in plain words).

Reports carry codes and raw evidence; this module says them through
:mod:`fingerprint.words`: check names, region and product names, durations with
their unit, shares as percentages, the real reason a check was not evaluated.
"""

from __future__ import annotations

from typing import Literal, get_args

from fingerprint.report import DeviceComponent, Finding, Report
from fingerprint.rules import RuleSet
from fingerprint.terminal import terminal_lines
from fingerprint.words import Lang, Words, load_words, moment

Audience = Literal["analyst", "applicant"]

_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Session {sid} (account {account}), {when}",
        "grade": "Security grade {grade}, score {score}/100",
        "applicant_title": "Why the account could not be opened yet",
        "applicant_grade": "This login's security grade is {grade} ({score} of 100).",
        "blacklisted": "Blacklisted: this decision is final. Accounts seen logging in from an "
        "emulator or a multi-open app go straight to the blacklist; changing the device now does "
        "not lift it.",
        "clean": "Nothing lowered the grade.",
        "lowered": "What lowered it:",
        "applicant_lowered": "What we saw:",
        "item": "  - {check} ({severity}, -{points} {unit}): {message}",
        "item_shared": "  - {check} ({severity}, no points of its own): {message}",
        "evidence": "      evidence: {evidence}",
        "advice": "What could change it:",
        "applicant_advice": "What you can do:",
        "not_evaluated": "Not evaluated:",
        "reason": "  - {check}: {reason}",
        "component": "Device component for eligibility (weight {weight}): {status}",
        "ok": "ok, {score} of 100",
        "veto": "veto (the account is blacklisted)",
        "pending": "pending, not a pass: the decision waits for what is below",
        "weak_cap": "  Low and medium findings together take at most {cap} points: the points "
        "above are scaled down to fit.",
        "total_100": "  Together the findings would take more than 100 points: the points above "
        "are scaled down to fit.",
        "pending_score": "score so far {score} of 100",
        "coverage": "  {share} of the device evidence was evaluated",
        "coverage_missing": " (not evaluated: {checks})",
        "waiting": "  - waiting for: {reason}",
        "applicant_waiting": "Still needed before a decision:",
        "applicant_final": "If you think this is a mistake, contact customer service.",
        "severity": "low|medium|high|critical",
    },
    "zh": {
        "title": "会话 {sid}(账户 {account}),{when}",
        "grade": "安全等级 {grade},得分 {score}/100",
        "applicant_title": "开通失败诊断",
        "applicant_grade": "本次登录的安全等级为 {grade}(得分 {score},满分 100)。",
        "blacklisted": (
            "已列入黑名单:此结论为最终结果。"
            "使用模拟器或多开软件登录的账户会被直接纳入黑名单,现在更换设备也无法解除。"
        ),
        "clean": "没有降低等级的因素。",
        "lowered": "降低等级的原因:",
        "applicant_lowered": "我们发现:",
        "item": "  - {check}({severity},扣 {points} 分):{message}",
        "item_shared": "  - {check}({severity},不另扣分):{message}",
        "evidence": "      依据:{evidence}",
        "advice": "可以采取的措施:",
        "applicant_advice": "您可以:",
        "not_evaluated": "未评估的检测项:",
        "reason": "  - {check}:{reason}",
        "component": "准入评估中的设备环境分项(权重 {weight}):{status}",
        "ok": "正常,得分 {score}/100",
        "veto": "一票否决(账户已列入黑名单)",
        "pending": "待定,不是通过:需等待以下事项",
        "weak_cap": "  低、中严重度的发现合计最多扣 {cap} 分,上面的分值已按比例缩减。",
        "total_100": "  各项发现合计超过 100 分,上面的分值已按比例缩减。",
        "pending_score": "目前得分 {score}/100",
        "coverage": "  已评估的设备证据占 {share}",
        "coverage_missing": "(未评估:{checks})",
        "waiting": "  - 等待:{reason}",
        "applicant_waiting": "做出决定前还需要:",
        "applicant_final": "如您认为有误,请联系客服。",
        "severity": "低|中|高|严重",
    },
}
_SEVERITIES = ("low", "medium", "high", "critical")


def explain(
    report: Report,
    rules: RuleSet,
    lang: Lang = "zh",
    *,
    audience: Audience = "analyst",
) -> str:
    """The diagnosis of ``report`` in ``lang`` ("zh" or "en") for ``audience``
    ("analyst": everything; "applicant": plain words and what to do). Anything else:
    ValueError."""
    if lang not in _TEXT:
        raise ValueError(f"lang must be one of {', '.join(get_args(Lang))}; got {lang!r}")
    if audience not in get_args(Audience):
        raise ValueError(
            f"audience must be one of {', '.join(get_args(Audience))}; got {audience!r}"
        )
    words = load_words(rules.directory)
    said = _Diagnosis(report, rules, words, lang)
    lines = said.for_analyst() if audience == "analyst" else said.for_applicant()
    # Ids and evidence carry input text: escape controls so a device model or property
    # value holding ESC or BEL cannot act on the reader's terminal.
    return terminal_lines("\n".join(lines)) + "\n"


class _Diagnosis:
    """One report said in one language; each method returns lines."""

    def __init__(self, report: Report, rules: RuleSet, words: Words, lang: Lang) -> None:
        self.report, self.rules, self.words, self.lang = report, rules, words, lang
        self.text = _TEXT[lang]
        # Largest deduction first: the reader sees what mattered most at the top.
        self.ordered = sorted(report.findings, key=lambda f: -report.contributions.get(f.code, 0))

    def for_analyst(self) -> list[str]:
        report, text = self.report, self.text
        lines = [
            text["title"].format(
                sid=report.session_id, account=report.account_id, when=moment(report.ts)
            ),
            text["grade"].format(grade=report.grade, score=report.score),
        ]
        if report.blacklisted:
            lines.append(text["blacklisted"])
        lines.extend(self._findings())
        lines.extend(self._not_evaluated())
        lines.extend(self._component())
        lines.extend(self._advice(text["advice"]))
        return lines

    def for_applicant(self) -> list[str]:
        report, text = self.report, self.text
        lines = [
            text["applicant_title"],
            text["applicant_grade"].format(grade=report.grade, score=report.score),
        ]
        if report.blacklisted:
            lines.append(text["blacklisted"])
        pending = () if report.blacklisted else report.device_component.pending_reasons
        # A finding that is what the decision waits for is said once, as still needed.
        waited = {self.words.pending_check(reason) for reason in pending}
        seen = [c for c in dict.fromkeys(f.check for f in self.ordered) if c not in waited]
        if seen:
            lines.append(text["applicant_lowered"])
            lines.extend(f"  - {self.words.check_about(check, self.lang)}" for check in seen)
        if pending:
            lines.append(text["applicant_waiting"])
            lines.extend(f"  - {self.words.pending(reason, self.lang)}" for reason in pending)
        lines.extend(self._advice(text["applicant_advice"]))
        if report.blacklisted:
            lines.append(text["applicant_final"])
        return lines

    # --- sections ------------------------------------------------------------------

    def _findings(self) -> list[str]:
        text = self.text
        if not self.ordered:
            return [text["clean"]]
        lines = [text["lowered"]]
        for finding in self.ordered:
            points = self.report.contributions.get(finding.code, 0)
            lines.append(
                text["item" if points else "item_shared"].format(
                    check=self.words.check(finding.check, self.lang),
                    severity=self._severity(finding.severity),
                    points=points,
                    unit="point" if points == 1 else "points",
                    message=self._message(finding),
                )
            )
            evidence = self._evidence(finding)
            if evidence:
                lines.append(text["evidence"].format(evidence=evidence))
        return lines + self._scaled()

    def _scaled(self) -> list[str]:
        """Why points differ from the catalogue's, when the grade scaled them."""
        scaled = self.report.points_scaled or {}
        applied = scaled.get("applied") or []
        return [
            self.text[name].format(cap=scaled.get("weak_cap", ""))
            for name in ("weak_cap", "total_100")
            if name in applied
        ]

    def _not_evaluated(self) -> list[str]:
        reasons = self.report.not_evaluated_reasons
        if not reasons:
            return []
        return [self.text["not_evaluated"]] + [
            self.text["reason"].format(
                check=self.words.check(check, self.lang),
                reason=self.words.not_evaluated(reason, self.lang),
            )
            for check, reason in reasons.items()
        ]

    def _component(self) -> list[str]:
        component, text = self.report.device_component, self.text
        score = round(component.score * 100)
        if component.status == "veto" or component.veto:
            status = text["veto"]
        elif component.status == "pending":
            status = text["pending"]
        else:
            status = text["ok"].format(score=score)
        weight = f"{round(component.weight * 100)}%"
        lines = [text["component"].format(weight=weight, status=status)]
        if component.status == "pending" and not component.veto:
            lines.extend(
                text["waiting"].format(reason=self.words.pending(reason, self.lang))
                for reason in component.pending_reasons
            )
            lines.append("  " + text["pending_score"].format(score=score))
        lines.append(self._coverage(component))
        return lines

    def _coverage(self, component: DeviceComponent) -> str:
        line = self.text["coverage"].format(share=f"{round(component.coverage * 100)}%")
        weighted = self.rules.grading.device_component.evidence_weights
        missing = [
            self.words.check(name, self.lang)
            for name in self.report.not_evaluated_reasons
            if weighted.get(name, 0) > 0
        ]
        if component.coverage < 1 and missing:
            sep = "、" if self.lang == "zh" else ", "
            line += self.text["coverage_missing"].format(checks=sep.join(missing))
        return line

    def _advice(self, heading: str) -> list[str]:
        """What the user could change: one piece per check (its largest finding's),
        then what a pending decision waits for; the same words once. None for a
        blacklisted session: the decision is final, and advice would say otherwise."""
        if self.report.blacklisted:
            return []
        tips: dict[str, None] = {}
        per_check: set[str] = set()
        for finding in self.ordered:
            spec = self.rules.codes.codes.get(finding.code)
            if spec is None or finding.check in per_check:
                continue
            tip = spec.advice_zh if self.lang == "zh" else spec.advice
            if tip:
                per_check.add(finding.check)
                tips[tip] = None
        for reason in self.report.device_component.pending_reasons:
            tip = self.words.pending_advice(reason, self.lang)
            if tip:
                tips[tip] = None
        if not tips:
            return []
        return [heading] + [f"  - {tip}" for tip in tips]

    # --- one finding ----------------------------------------------------------------

    def _severity(self, severity: str) -> str:
        names = self.text["severity"].split("|")
        return names[_SEVERITIES.index(severity)] if severity in _SEVERITIES else severity

    def _message(self, finding: Finding) -> str:
        """The code's message said again from its template, in words; a code this rule
        set does not know keeps the message the report carries."""
        spec = self.rules.codes.codes.get(finding.code)
        if spec is None:
            return finding.message_zh if self.lang == "zh" else finding.message
        template = spec.message_zh if self.lang == "zh" else spec.message
        return self.words.fill(template, finding.evidence, self.lang)

    def _evidence(self, finding: Finding) -> str:
        words, lang = self.words, self.lang
        sep = ";" if lang == "zh" else "; "
        parts = [
            f"{words.evidence_label(key, lang)} {words.value(key, value, lang)}"
            for key, value in finding.evidence.items()
            if value not in (None, [], {}, "") and words.shows(key)
        ]
        return sep.join(parts)[:400]
