"""A readable diagnosis of one report (开通失败诊断), in Chinese or English."""

from __future__ import annotations

from typing import Literal, get_args

from fingerprint.report import Report
from fingerprint.rules import CodeSpec, RuleSet
from fingerprint.terminal import terminal_lines

Lang = Literal["zh", "en"]

_TEXT = {
    "en": {
        "title": "Session {sid} (account {account})",
        "grade": "Security grade {grade}, score {score}/100",
        "blacklisted": "Blacklisted: this decision is final. Accounts seen logging in from an "
        "emulator or a multi-open app go straight to the blacklist; changing the device now does "
        "not lift it.",
        "clean": "Nothing lowered the grade.",
        "lowered": "What lowered it:",
        "item": "  - [{severity}] {message} (-{points}, {code})",
        "evidence": "      evidence: {evidence}",
        "advice": "What could change it:",
        "not_evaluated": "Not evaluated (signals missing): {checks}",
        "component": (
            "Device component for eligibility: weight {weight:.0%}, score {score:.2f}{veto}"
        ),
        "veto": ", VETO",
        "pending": "Pending, not a pass: the eligibility decision waits for {reasons}.",
    },
    "zh": {
        "title": "会话 {sid}(账户 {account})",
        "grade": "安全等级 {grade},得分 {score}/100",
        "blacklisted": (
            "已列入黑名单:此结论为最终结果。"
            "使用模拟器或多开软件登录的账户会被直接纳入黑名单,现在更换设备也无法解除。"
        ),
        "clean": "没有降低等级的因素。",
        "lowered": "降低等级的原因:",
        "item": "  - [{severity}] {message}(-{points},{code})",
        "evidence": "      证据:{evidence}",
        "advice": "可以采取的措施:",
        "not_evaluated": "未评估(缺少信号):{checks}",
        "component": "准入评估中的设备环境分项:权重 {weight:.0%},得分 {score:.2f}{veto}",
        "veto": ",一票否决",
        "pending": "待定,不是通过:准入决定需等待{reasons}。",
    },
}
_SEVERITY_ZH = {"low": "低", "medium": "中", "high": "高", "critical": "严重"}


def explain(report: Report, rules: RuleSet, lang: Lang = "zh") -> str:
    """The diagnosis of ``report`` in ``lang`` ("zh" or "en"; anything else: ValueError)."""
    text = _TEXT.get(lang)
    if text is None:
        raise ValueError(f"lang must be one of {', '.join(get_args(Lang))}; got {lang!r}")
    lines = [
        text["title"].format(sid=report.session_id, account=report.account_id),
        text["grade"].format(grade=report.grade, score=report.score),
    ]
    if report.blacklisted:
        lines.append(text["blacklisted"])
    lines.extend(_reasons(report, rules, lang))
    if report.not_evaluated:
        lines.append(text["not_evaluated"].format(checks=", ".join(report.not_evaluated)))
    component = report.device_component
    lines.append(
        text["component"].format(
            weight=component.weight,
            score=component.score,
            veto=text["veto"] if component.veto else "",
        )
    )
    if component.status == "pending":
        lines.append(_pending_line(component.pending_reasons, component.coverage, lang))
    # Ids, messages and evidence carry input text: escape controls so a device model
    # or property value holding ESC or BEL cannot act on the reader's terminal.
    return terminal_lines("\n".join(lines)) + "\n"


_PENDING_WORDS = {
    "en": {
        "too_few_signals": "more of the device to be checked (only {coverage:.0%} of the "
        "device evidence could be)",
        "face_verification_not_done": "face verification (人脸核身)",
        "and": " and ",
    },
    "zh": {
        "too_few_signals": "更多设备信息(仅评估了 {coverage:.0%} 的设备证据)",
        "face_verification_not_done": "完成人脸核身",
        "and": "和",
    },
}


def _pending_line(reasons: tuple[str, ...], coverage: float, lang: Lang) -> str:
    """What a pending component waits for, in words (a reason we have no words for is
    named as it is rather than dropped)."""
    words = _PENDING_WORDS[lang]
    named = [words.get(r, r).format(coverage=coverage) for r in reasons]
    return _TEXT[lang]["pending"].format(reasons=words["and"].join(named))


def _reasons(report: Report, rules: RuleSet, lang: Lang) -> list[str]:
    text = _TEXT[lang]
    if not report.findings:
        return [text["clean"]]
    lines = [text["lowered"]]
    ordered = sorted(report.findings, key=lambda f: -report.contributions.get(f.code, 0))
    advice: dict[str, None] = {}
    for finding in ordered:
        severity = _SEVERITY_ZH[finding.severity] if lang == "zh" else finding.severity
        message = finding.message_zh if lang == "zh" else finding.message
        lines.append(
            text["item"].format(
                severity=severity,
                message=message,
                code=finding.code,
                points=report.contributions.get(finding.code, 0),
            )
        )
        lines.append(text["evidence"].format(evidence=_evidence(finding.evidence)))
        tip = _advice(rules.codes.codes.get(finding.code), lang)
        if tip:
            advice[tip] = None
    if advice:
        lines.append(text["advice"])
        lines.extend(f"  - {tip}" for tip in advice)
    return lines


def _advice(spec: CodeSpec | None, lang: Lang) -> str:
    if spec is None:
        return ""
    return spec.advice_zh if lang == "zh" else spec.advice


def _evidence(evidence: dict[str, object]) -> str:
    parts = []
    for key, value in evidence.items():
        if key == "matches" and isinstance(value, list):
            value = "; ".join(
                f"{m.get('key') or m.get('field')}={m.get('value')}"
                for m in value
                if isinstance(m, dict)
            )
        parts.append(f"{key}={value}")
    return ", ".join(parts)[:400]
