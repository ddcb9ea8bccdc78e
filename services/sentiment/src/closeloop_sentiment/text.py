"""Channel-aware text handling: what of a feedback item is the customer's own words.

* **hotline**: only the customer's turns. They come from
  ``attributes["transcript"]`` (``[{"role", "text"}, ...]``) when the
  contact-center adapter kept them, else from ``ROLE: text`` lines in the text
  (``CUSTOMER:``/``AGENT:``, ``客户：``/``客服：``). Agents are trained to sound
  positive; their turns would pull every call towards neutral. A transcript
  without roles (a voicemail transcription) is the customer's.
* **email**: the subject plus the new message only. Quoted replies (``> ...``,
  ``On ... wrote:``, ``在 ... 写道：``, ``-----Original Message-----``,
  ``-----原始邮件-----``, Outlook's ``From:``/``发件人：`` header blocks) and the
  signature (``-- ``, sign-offs such as ``Regards,``/``此致`` with the name
  lines after them, "Sent from my iPhone"/``发自我的``, confidentiality notices)
  are dropped: our own agent's polite quoted reply is not the customer's mood.
* **social**: emoji and hashtags are kept as signals. A hashtag's words are
  freed (``#NeverAgain`` → ``Never Again``, ``#宽带故障#`` → ``宽带故障``) so the
  lexicons see them; @-mentions (brand handles) are removed.
* **app** reviews and surveys: the text as is; the rating is combined with the
  text score by the scorer.

Any other channel gets the transcript rule (any channel may carry one) and
subject + text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

CUSTOMER_ROLES = frozenset(
    {"customer", "caller", "client", "user", "客户", "顾客", "用户", "来电人"}
)
AGENT_ROLES = frozenset(
    {
        "agent",
        "rep",
        "representative",
        "advisor",
        "system",
        "bot",
        "ivr",
        "客服",
        "坐席",
        "工作人员",
    }
)

# "CUSTOMER: text" / "客户：text" at the start of a line.
_ROLE_LINE = re.compile(r"^\s*([A-Za-z]+|[\u4e00-\u9fff]{2,4})\s*[:：]\s*(.*)$")


@dataclass(frozen=True)
class PreparedText:
    """The text to analyse and what was removed to get it (for tests and debugging)."""

    text: str
    dropped: tuple[str, ...] = ()


def customer_turns(transcript: object) -> list[str]:
    """The customer's turns of a ``[{"role": ..., "text": ...}, ...]`` transcript.

    Anything malformed is skipped rather than failing the item: transcripts come
    from many telephony vendors and are not part of the contract.
    """
    if not isinstance(transcript, list):
        return []
    turns: list[str] = []
    for turn in transcript:
        if not isinstance(turn, dict):
            continue
        role, text = turn.get("role"), turn.get("text")
        is_customer = isinstance(role, str) and role.strip().lower() in CUSTOMER_ROLES
        if is_customer and isinstance(text, str) and text.strip():
            turns.append(text.strip())
    return turns


def customer_lines(text: str) -> str | None:
    """The customer's lines of a ``ROLE: text`` transcript; None if the text has no roles.

    Lines without a role prefix continue the previous speaker's turn.
    """
    speaker: str | None = None
    kept: list[str] = []
    saw_role = False
    for line in text.splitlines():
        match = _ROLE_LINE.match(line)
        role = match.group(1).strip().lower() if match else None
        if match and role is not None and (role in CUSTOMER_ROLES or role in AGENT_ROLES):
            saw_role = True
            speaker = "customer" if role in CUSTOMER_ROLES else "agent"
            line = match.group(2)
        if speaker == "customer" and line.strip():
            kept.append(line.strip())
    if not saw_role:
        return None
    return "\n".join(kept)


# --- email -------------------------------------------------------------------

_QUOTE_START = re.compile(
    r"""^\s*(?:
        (?:On|Am|Le)\s.{0,200}?(?:wrote|schrieb|a\ écrit)\s*:\s*$
      | 在.{0,120}?写道\s*[:：]\s*$
      | -{2,}\s*(?:Original\s+Message|Forwarded\s+message|原始邮件|转发的邮件)\s*-{2,}
      | _{10,}\s*$
      | (?:From|发件人)\s*[:：].*$
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_SIGNATURE_START = re.compile(
    r"""^\s*(?:
        --\s*$
      | Sent\ from\ (?:my|Yahoo|Mail|Outlook)\b.*
      | Get\ Outlook\ for\b.*
      | 发自(?:我的)?.{0,20}$
      | (?:This\ (?:e-?mail|message)\ (?:and\ any\ attachments\ )?(?:is|are)\ confidential|本邮件(?:及(?:其)?附件)?).*
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# A sign-off line on its own ("Regards," "Thanks" "此致"): it and the name lines
# after it are dropped when only short lines follow it.
_SIGN_OFF = re.compile(
    r"""^\s*(?:
        (?:kind(?:est)?\s+|best\s+|warm\s+|many\s+)?(?:regards|wishes)
      | best | cheers | thanks(?:\s+again)? | thank\s+you | many\s+thanks | thx
      | yours\s+(?:faithfully|sincerely|truly) | sincerely
      | 此致(?:敬礼)? | 谢谢[!！]? | 多谢 | 祝好 | 顺祝商祺
    )\s*[,，.!！。]?\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
MAX_NAME_LINE_CHARS = 60
MAX_NAME_LINES = 5


def strip_email(text: str) -> PreparedText:
    """The new message of an email body, without quoted replies and signature."""
    lines = text.replace("\r\n", "\n").split("\n")
    dropped: list[str] = []
    kept: list[str] = []
    for index, line in enumerate(lines):
        if _QUOTE_START.match(line) or _SIGNATURE_START.match(line):
            dropped.append("\n".join(lines[index:]))
            break
        if line.lstrip().startswith(">"):
            dropped.append(line)
            continue
        kept.append(line)
    # Sign-off: the last sign-off line followed only by a few short lines.
    while kept and not kept[-1].strip():
        kept.pop()
    for index in range(len(kept) - 1, max(-1, len(kept) - MAX_NAME_LINES - 2), -1):
        if _SIGN_OFF.match(kept[index]):
            tail = kept[index + 1 :]
            if all(len(line.strip()) <= MAX_NAME_LINE_CHARS for line in tail):
                dropped.append("\n".join(kept[index:]))
                kept = kept[:index]
            break
    return PreparedText("\n".join(kept).strip(), tuple(dropped))


# --- social --------------------------------------------------------------------

_MENTION = re.compile(r"(?<![\w@])@[\w.]+")
_CHINESE_HASHTAG = re.compile(r"#([^#\s]{1,40})#")
_HASHTAG = re.compile(r"#(\w+)")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=\d)")


def _hashtag_words(match: re.Match[str]) -> str:
    return _CAMEL.sub(" ", match.group(1)).replace("_", " ")


def social_text(text: str) -> PreparedText:
    """Mentions removed, hashtags turned into words; emoji kept."""
    mentions = tuple(_MENTION.findall(text))
    text = _MENTION.sub("", text)
    text = _CHINESE_HASHTAG.sub(lambda match: f" {match.group(1)} ", text)
    text = _HASHTAG.sub(_hashtag_words, text)
    return PreparedText(" ".join(text.split()), mentions)


def prepare(
    channel: str | None, text: str, subject: str | None, attributes: Mapping[str, object]
) -> PreparedText:
    """The customer's own words of one feedback item, by channel (see the module doc)."""
    turns = customer_turns(attributes.get("transcript"))
    if turns:
        return PreparedText("\n".join(turns))
    if channel == "hotline":
        lines = customer_lines(text)
        # A transcript whose turns are all the agent's has no customer text:
        # keep the whole text rather than score nothing.
        if lines:
            return PreparedText(lines)
        return PreparedText(text)
    if channel == "email":
        body = strip_email(text)
        joined = f"{subject}\n{body.text}" if subject else body.text
        return PreparedText(joined.strip() or text, body.dropped)
    if channel == "social":
        return social_text(f"{subject}\n{text}" if subject else text)
    return PreparedText(f"{subject}\n{text}" if subject else text)
