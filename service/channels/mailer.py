"""E-mail alerts through SMTP: a text and an HTML part, the snapshot attached, to a list of addresses.

The Message-ID is made from the delivery's idempotency key, the same on every retry,
so a mail client shows a message sent twice (at-least-once delivery) as one. A server
that refuses some recipients but takes the others has delivered (the refused ones are
logged: retrying would send the others a copy); so has one that accepted the DATA and then
fails or refuses the QUIT. A refusal of all, a 4xx/5xx reply before that, a network failure
or a message that cannot be composed (a header that would break) is a failed attempt,
retried by the outbox. A server that cannot be reached, hangs up or does not answer in time
(``SendOutcome.is_unreachable``) holds the list's other e-mails of the batch back with it.

A username or password with non-ASCII characters logs in with AUTH PLAIN in UTF-8 (RFC 4616):
smtplib encodes its AUTH as ASCII and would fail every e-mail. ASCII ones log in as smtplib
chooses (CRAM-MD5, PLAIN or LOGIN, as the server offers).
"""

from __future__ import annotations

import base64
import html
import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from anjian.cameras.url import mask_credentials
from anjian.service.channels.config import EmailConfig
from anjian.service.channels.message import AlertMessage
from anjian.service.channels.outcome import SendOutcome

__all__ = ["EmailChannel", "compose_email"]

logger = logging.getLogger(__name__)

_SMTP_OK = 250
_SMTP_BYE = 221
_SMTP_AUTH_OK = (235, 503)  # 503: already authenticated, which smtplib's login takes as success too
_HTML_COLOURS = {"red": "#D32F2F", "orange": "#EF6C00", "yellow": "#F9A825", "blue": "#1565C0"}


def compose_email(config: EmailConfig, message: AlertMessage, snapshot: bytes | None) -> EmailMessage:
    """The e-mail announcing ``message``: text and HTML alternatives, the snapshot attached when given."""
    mail = EmailMessage()
    mail["Subject"] = f"{config.subject_prefix} {message.title}".strip()
    mail["From"] = config.sender
    mail["To"] = ", ".join(config.to)
    mail["Date"] = formatdate(localtime=False)
    domain = config.sender.rsplit("@", 1)[1]
    mail["Message-ID"] = f"<{message.idempotency_key.replace(':', '.')}@{domain}>"  # the same on every retry
    mail["X-Anjian-Event-Id"] = message.event_id
    mail["X-Anjian-Event-Kind"] = message.kind
    links = []
    if message.alert_url is not None:
        links.append(("查看告警与证据 Open alert and evidence", message.alert_url))
    if message.snapshot_url is not None and snapshot is None:
        links.append(("快照 Snapshot", message.snapshot_url))
    text_lines = [message.title, "", *(f"{label}: {value}" for label, value in message.fields), ""]
    text_lines += [f"{label}: {url}" for label, url in links]
    if snapshot is not None:
        text_lines.append("快照见附件 Snapshot attached.")
    mail.set_content("\n".join(text_lines) + "\n")
    colour = _HTML_COLOURS.get(message.colour, "#000000")
    rows = "".join(
        f"<tr><th align='left' style='padding:2px 12px 2px 0'>{html.escape(label)}</th>"
        f"<td>{html.escape(value)}</td></tr>"
        for label, value in message.fields
    )
    anchors = " ".join(
        f"<p><a href='{html.escape(url, quote=True)}'>{html.escape(label)}</a></p>" for label, url in links
    )
    image = (
        "<p><img src='cid:snapshot' alt='snapshot' style='max-width:100%'></p>"
        if snapshot is not None
        else ""
    )
    mail.add_alternative(
        "<!doctype html><html><body style='font-family:sans-serif'>"
        f"<h2 style='color:#fff;background:{colour};padding:8px 12px'>{html.escape(message.title)}</h2>"
        f"<table>{rows}</table>{anchors}{image}</body></html>",
        subtype="html",
    )
    if snapshot is not None:
        html_part = mail.get_body(preferencelist=("html",))
        if html_part is not None:  # the inline image the HTML shows (cid:snapshot)
            html_part.add_related(
                snapshot, maintype="image", subtype="jpeg", cid="<snapshot>", filename="snapshot.jpg"
            )
        mail.add_attachment(snapshot, maintype="image", subtype="jpeg", filename=f"{message.event_id}.jpg")
    return mail


def _login(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """Log in as smtplib does, or, for credentials beyond ASCII, with AUTH PLAIN in UTF-8 (RFC 4616).

    Raises:
        smtplib.SMTPAuthenticationError: The server refused the credentials.
        smtplib.SMTPNotSupportedError: The server offers no AUTH, or no PLAIN for non-ASCII credentials.
    """
    if username.isascii() and password.isascii():
        smtp.login(username, password)
        return
    smtp.ehlo_or_helo_if_needed()
    if not smtp.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    if "PLAIN" not in smtp.esmtp_features["auth"].upper().split():
        raise smtplib.SMTPNotSupportedError(
            "the server offers no AUTH PLAIN, which a username or password with non-ASCII characters needs"
        )
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
    code, reply = smtp.docmd("AUTH", f"PLAIN {token}")
    if code not in _SMTP_AUTH_OK:
        raise smtplib.SMTPAuthenticationError(code, reply)


class EmailChannel:
    """Sends alert messages as e-mail through one SMTP server.

    Args:
        config: The e-mail section of the site YAML.
    """

    def __init__(self, config: EmailConfig) -> None:
        self.name = config.name
        self._config = config

    def send(self, message: AlertMessage, snapshot: bytes | None) -> SendOutcome:
        """Deliver the e-mail once; never raises for a message that cannot be composed, SMTP or network failures."""
        config = self._config
        try:
            mail = compose_email(config, message, snapshot if config.is_snapshot_attached else None)
        except (ValueError, TypeError) as exc:  # a header that would break: this message fails, not the batch
            return SendOutcome(None, f"the e-mail cannot be composed: {type(exc).__name__}: {exc}"[:300])
        try:
            refused = self._deliver(mail)
        except smtplib.SMTPResponseException as exc:
            reply = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            return SendOutcome(
                exc.smtp_code,
                f"SMTP {exc.smtp_code}: {mask_credentials(reply)[:200]}",
                is_unreachable=isinstance(exc, smtplib.SMTPConnectError),  # refused its greeting: busy, down
            )
        except smtplib.SMTPRecipientsRefused as exc:
            return SendOutcome(None, f"SMTP refused every recipient: {sorted(exc.recipients)}")
        except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError and timeouts are OSErrors
            return SendOutcome(
                None,
                f"{type(exc).__name__}: {mask_credentials(str(exc))[:200]}",
                # No answer: refused, timed out (a hung server's silence reads as a disconnect), no TLS.
                is_unreachable=isinstance(exc, smtplib.SMTPServerDisconnected | OSError),
            )
        if refused:
            logger.warning(
                "e-mail channel %s: the server refused %s for event %s",
                self.name,
                sorted(refused),
                message.event_id,
            )
        return SendOutcome(_SMTP_OK, None)

    def _deliver(self, mail: EmailMessage) -> dict[str, tuple[int, bytes]]:
        """Log in and send ``mail`` in one session; the recipients the server refused.

        Once the server has accepted the DATA the mail is its to deliver: the QUIT after
        it may fail or answer other than 221, and that is only logged (counting the
        attempt failed would send the mail again on every retry).
        """
        config = self._config
        smtp = self._connect()
        try:
            if config.username is not None and config.password is not None:
                _login(smtp, config.username, config.password.get_secret_value())
            refused = smtp.send_message(mail, from_addr=config.sender, to_addrs=list(config.to))
        except BaseException:
            smtp.close()
            raise
        self._quit(smtp)
        return refused

    def _quit(self, smtp: smtplib.SMTP) -> None:
        """End an SMTP session whose mail was accepted, whatever the server answers to QUIT."""
        try:
            code, _ = smtp.docmd("QUIT")
            if code != _SMTP_BYE:
                logger.info(
                    "e-mail channel %s: the server answered QUIT with %d (mail accepted)", self.name, code
                )
        except (smtplib.SMTPException, OSError) as exc:
            logger.info("e-mail channel %s: QUIT failed after the mail was accepted: %s", self.name, exc)
        finally:
            smtp.close()

    def _connect(self) -> smtplib.SMTP:
        """An SMTP session, over TLS from the start or upgraded with STARTTLS as configured."""
        config = self._config
        context = ssl.create_default_context(cafile=config.ca_file)
        if config.security == "tls":
            return smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout_s, context=context)
        smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)
        try:
            if config.security == "starttls":
                smtp.ehlo()
                smtp.starttls(context=context)
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp
