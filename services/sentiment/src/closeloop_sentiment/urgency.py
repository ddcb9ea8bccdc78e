"""Urgency and churn risk, with the cues that triggered it.

Cue kinds (English and Chinese patterns below):

| cue | examples |
|---|---|
| ``cancel`` | cancel my subscription, close my account, not renewing, 销户, 退订, 注销 |
| ``switch_provider`` | switching to another provider, going to Verizon, 携号转网, 换联通, 换别家 |
| ``regulator`` | complaint to a regulator, BBB, FTC, Ofcom, ombudsman, 12315, 消协, 工信部, 银保监会 |
| ``legal`` | lawyer, sue, court, legal action, proceedings, 律师, 起诉, 法院 |
| ``repeat_contact`` | third time I call, contacted you six times, again, 第三次, 多次, 又打来了 |
| ``safety`` | fire, smoke, gas leak, electric shock, injured, 起火, 冒烟, 漏电, 受伤 |
| ``fraud`` | money taken without permission, account hacked, 盗刷, 被盗 |

Level: **high** if any of ``regulator``, ``legal``, ``safety``, ``fraud``,
or two different cue kinds; **medium** for one of ``cancel``,
``switch_provider``, ``repeat_contact``; **low** otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from closeloop_shared.contracts.sentiment import Urgency

HIGH_CUES = frozenset({"regulator", "legal", "safety", "fraud"})

_NUMBER = r"(?:two|three|four|five|six|seven|eight|nine|ten|\d+)"
_ORDINAL = r"(?:second|third|fourth|fifth|sixth|\d+(?:nd|rd|th))"
_CN_NUMBER = r"[二两三四五六七八九十几\d]"

_ENGLISH: dict[str, str] = {
    "cancel": r"""
        \bcancel(?:l?ing|l?ed|s)?\s+(?:my|the|our|your|everything|it|this)\b
      | \bcancelling\b | \bi(?:'m|\s+am)\s+cancell?ing\b | \bwant\s+to\s+cancel\b
      | \bclos(?:e|ing)\s+my\s+account\b | \bterminat(?:e|ing)\s+my\b
      | \b(?:not|won't|will\s+not\s+be)\s+renew(?:ing)?\b | \bunsubscribe\b
      | \bdone\s+with\s+(?:you|@?\w+)\b | \bi'?m\s+done\b | \bnever\s+(?:again|order(?:ing)?\s+again)\b
      | \buninstall(?:ed|ing)?\b | \bend\s+(?:my|the)\s+contract\b
    """,
    "switch_provider": r"""
        \bswitch(?:ing|ed)?\s+(?:to|provider|providers|companies)\b
      | \b(?:moving|going|port(?:ing)?)\s+(?:my\s+number\s+)?to\s+(?:a\s+)?(?:another|different|other|new|verizon|at&t|t-mobile|vodafone|ee|bt|sky|o2|comcast|xfinity)\b
      | \b(?:another|different|other|new|cheaper)\s+(?:provider|company|companies|carrier|bank|supplier|network)\b
      | \bcompetitor\b | \border(?:ed)?\s+elsewhere\b | \bgo\s+elsewhere\b | \blooking\s+at\s+other\b
    """,
    "regulator": r"""
        \bregulator\b | \b12315\b | \bombudsman\b | \bbetter\s+business\s+bureau\b | \bbbb\b | \bftc\b | \bcfpb\b
      | \bofcom\b | \bofgem\b | \bfca\b | \bfcc\b | \btrading\s+standards\b | \bconsumer\s+protection\b
      | \battorney\s+general\b | \bformal(?:ly)?\s+complain | \bfile\s+a\s+complaint\b | \bfiling\s+a\s+complaint\b
      | \breport(?:ing|ed)?\s+(?:you|this|it)?\s*to\s+(?:the\s+)?(?:regulator|authorities|police)\b
      | \bdispute\s+the\s+charges?\b | \bchargeback\b
    """,
    "legal": r"""
        \blawyers?\b | \battorneys?\b | \bsolicitors?\b | \blegal\s+(?:action|notice|proceedings|team)\b
      | \bsu(?:e|ing)\s+(?:you|your|the)\b | \blawsuit\b | \bcourt\b | \bproceedings\b
      | \bgdpr\b | \bccpa\b | \bunder\s+(?:the\s+)?(?:law|data\s+protection)\b
    """,
    "repeat_contact": rf"""
        \b{_ORDINAL}\s+(?:time|email|call|complaint)\b | \b{_NUMBER}\s+times\b
      | \b(?:called|contacted|emailed|written|rang|phoned)\s+(?:you\s+|your\s+company\s+)?(?:{_NUMBER}\s+times|again|repeatedly|multiple\s+times|several\s+times)\b
      | \b(?:calling|writing|emailing)\s+again\b | \b(?:yet|once)\s+again\b | \bagain\s+and\s+again\b
      | \b(?:happened|charged|broke|broken|down|late|crashed|failed|lost|locked|up)\s+(?:\w+\s+){0, 3}?again\b
      | \bevery\s+(?:single\s+)?time\b
      | \bin\s+a\s+row\b | \bkeep\s+(?:not\s+)?(?:fixing|saying|telling|getting)\b | \bstill\s+(?:not|no)\b
      | \b(?:last|previous)\s+(?:week|time)\s+too\b | \braised\s+this\s+{_NUMBER}\s+times\b
    """,
    "safety": r"""
        \bfire\b | \bsmoke\b | \bsmoking\b | \bburn(?:ing|t|ed)?\b | \bsparked?\b | \bmelted\b | \boverheat(?:ing|ed)?\b
      | \bgas\b | \bcarbon\s+monoxide\b | \belectric(?:al)?\s+shock\b | \belectrocut | \binjur(?:y|ed|ies)\b | \bhurt\b
      | \bstitches\b | \bbleeding\b | \bhospital\b | \bcould\s+have\s+died\b | \bdangerous\b | \bunsafe\b | \brecall(?:ed)?\b
      | \bglass\s+in\b | \bbrakes?\s+failed\b | \bchoking\b
    """,
    "fraud": r"""
        \bfraud(?:ulent)?\b | \bscam(?:med)?\b | \bhack(?:ed)?\b | \bstolen\b | \bunauthori[sz]ed\b | \bidentity\s+theft\b
      | \bwithout\s+my\s+(?:permission|consent|authori[sz]ation)\b | \bdidn'?t\s+(?:do|authori[sz]e)\s+that\b
      | \bsomeone\s+(?:logged|changed|took|just\s+took|ordered|used)\b | \bdata\s+breach\b
      | \bsecurity\s+(?:issue|problem|breach|hole)\b | \bdata\s+leak\b
    """,
}

_CHINESE: dict[str, str] = {
    "cancel": r"销户|注销|退订|取消(?:我的|订阅|会员|合约|套餐|业务|自动续费)?|不续约|解约|退卡|再也不(?:买|来|用|点|坐)|卸载",
    "switch_provider": r"携号转网|转网|换(?:到)?(?:联通|移动|电信|运营商|别家|一家)|换到别家|去别家|别家买|看别家|换了一家",
    "regulator": r"12315|12345|消协|消费者协会|工信部|银保监|金融监管|市场监管|监管部门|投诉到|举报|申诉|拒付",
    "legal": r"律师|起诉|法院|诉讼|打官司|律师函|法律途径|个人信息保护法|消费者权益保护法|依法",
    "repeat_contact": rf"第{_CN_NUMBER}次|{_CN_NUMBER}次(?:了|电话|邮件)|多次|反复|又(?:打来|来了|打|发|把)|一直(?:没|不)|每次|还是没|上周也|也(?:检测|试|打|问)过|连续{_CN_NUMBER}",
    "safety": r"起火|着火|冒烟|火花|烧黑|烧焦|爆炸|漏电|触电|被电|煤气味|燃气泄漏|受伤|流血|住院|出人命|车祸|失灵|玻璃碴|安全隐患|危险|召回",
    "fraud": r"盗刷|被盗|盗号|诈骗|被人转走|转走了|没经过我的同意|未经(?:我的)?同意|泄露|外地登录|安全问题|安全漏洞",
}


def _compile(patterns: dict[str, str], flags: int) -> list[tuple[str, re.Pattern[str]]]:
    return [(kind, re.compile(pattern, flags)) for kind, pattern in patterns.items()]


_ENGLISH_PATTERNS = _compile(_ENGLISH, re.IGNORECASE | re.VERBOSE)
# The same (all lower-case) patterns without IGNORECASE, for the lower-cased
# text: ~2.5× faster, because a case-insensitive literal costs the regex
# engine a case lookup at every position it tries.
_ENGLISH_LOWERED_PATTERNS = _compile(_ENGLISH, re.VERBOSE)
_CHINESE_PATTERNS = _compile(_CHINESE, 0)
CUE_KINDS: tuple[str, ...] = tuple(_ENGLISH)
# Characters IGNORECASE matches to an ASCII letter that str.lower() does not
# turn into that letter alone (long s, Kelvin sign, dotted and dotless I): a
# text with one is matched case-insensitively as it is, so that both ways
# always find the same cues (tests/sentiment/test_fast_paths.py checks the list).
CASE_FOLD_EXCEPTIONS = "\u017f\u212a\u0130\u0131"
_CASE_FOLD_EXCEPTION = re.compile(f"[{CASE_FOLD_EXCEPTIONS}]")


@dataclass(frozen=True)
class UrgencyResult:
    level: Urgency
    cues: tuple[str, ...]
    """``kind: matched text`` for every cue kind found, e.g. ``regulator: 12315``."""

    @property
    def kinds(self) -> list[str]:
        return [cue.split(":", 1)[0] for cue in self.cues]


def level_for(kinds: Sequence[str]) -> Urgency:
    unique = set(kinds)
    if unique & HIGH_CUES or len(unique) >= 2:
        return Urgency.HIGH
    if unique:
        return Urgency.MEDIUM
    return Urgency.LOW


def assess(text: str) -> UrgencyResult:
    """The urgency of a text and the cues behind it (first match of each kind)."""
    quoted = text.replace("\u2019", "'")
    lowered = quoted.lower()
    # Lower-casing keeps every position (checked by the length: only "İ"
    # grows), so a match in the lower-cased text spans the same characters of
    # the text, and the cue quotes them as written.
    if len(lowered) == len(quoted) and not _CASE_FOLD_EXCEPTION.search(quoted):
        english, english_haystack = _ENGLISH_LOWERED_PATTERNS, lowered
    else:
        english, english_haystack = _ENGLISH_PATTERNS, quoted
    cues: dict[str, str] = {}
    for kind, pattern in english:
        match = pattern.search(english_haystack)
        if match:
            cues[kind] = _cue(kind, quoted[match.start() : match.end()])
    # The Chinese patterns need Chinese characters (or 12315, which ASCII
    # text spells out the same way, so it is also an English regulator cue).
    if not quoted.isascii():
        for kind, pattern in _CHINESE_PATTERNS:
            if kind not in cues:
                match = pattern.search(quoted)
                if match:
                    cues[kind] = _cue(kind, match.group(0))
    kinds = [kind for kind in CUE_KINDS if kind in cues]
    return UrgencyResult(level_for(kinds), tuple(cues[kind] for kind in kinds))


def _cue(kind: str, matched: str) -> str:
    return f"{kind}: {' '.join(matched.split())}"
