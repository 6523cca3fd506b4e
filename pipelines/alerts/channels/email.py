"""Email over SMTP (smtplib): STARTTLS or implicit TLS, optional auth, a plain
text and an HTML part.

The Message-ID is derived from the idempotency key (which holds the alert's
random uid: unique across installations, so Gmail never drops a new alert as a
copy of an old one), so a message re-sent after a crash is recognisably the
same; a re-sighting carries
In-Reply-To/References to the first alert, so mail clients thread it.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from leaksentry.config.alerts import EmailChannel
from pipelines.alerts import render
from pipelines.alerts.channels.base import ChannelError, Outgoing

_DOMAIN = "leaksentry.invalid"


def message_id(key: str) -> str:
    """A short, header-safe id (whatever the channel's name): a hash of the key."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{_DOMAIN}>"


def build_message(config: EmailChannel, message: Outgoing) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = render.subject(message.payload)
    msg["From"] = config.from_addr
    msg["To"] = ", ".join(config.to)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id(message.idempotency_key)
    msg["Idempotency-Key"] = message.idempotency_key
    msg["X-LeakSentry-Alert-Id"] = str(message.alert_id)
    msg["X-LeakSentry-Severity"] = message.severity
    if message.thread_key:
        msg["In-Reply-To"] = message_id(message.thread_key)
        msg["References"] = message_id(message.thread_key)
    if message.low_priority:
        msg["X-Priority"] = "5"
        msg["Importance"] = "low"
    elif message.severity in ("critical", "high"):
        msg["X-Priority"] = "1"
        msg["Importance"] = "high"
    msg.set_content(render.text(message.payload))
    msg.add_alternative(render.html_body(message.payload), subtype="html")
    return msg


class EmailSender:
    def __init__(self, config: EmailChannel) -> None:
        self.name = config.name
        self.config = config

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.ca_file)

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        if c.security == "tls":
            return smtplib.SMTP_SSL(c.host, c.effective_port, timeout=c.timeout,
                                    context=self._context())
        smtp = smtplib.SMTP(c.host, c.effective_port, timeout=c.timeout)
        if c.security == "starttls":
            smtp.starttls(context=self._context())
        return smtp

    def send(self, message: Outgoing) -> None:
        c = self.config
        msg = build_message(c, message)
        try:
            with self._connect() as smtp:
                if c.username:
                    smtp.login(c.username, c.secret_password() or "")
                refused = smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelError(f"channel {self.name!r}: SMTP authentication failed"
                               f" ({exc.smtp_code})", retryable=False) from None
        except smtplib.SMTPNotSupportedError:
            raise ChannelError(f"channel {self.name!r}: the server at {c.host}:"
                               f"{c.effective_port} does not offer STARTTLS/AUTH",
                               retryable=False) from None
        except smtplib.SMTPRecipientsRefused:
            raise ChannelError(f"channel {self.name!r}: all recipients refused",
                               retryable=False) from None
        except smtplib.SMTPResponseException as exc:
            retryable = 400 <= exc.smtp_code < 500
            raise ChannelError(f"channel {self.name!r}: SMTP {exc.smtp_code}",
                               retryable=retryable) from None
        except ssl.SSLCertVerificationError as exc:
            raise ChannelError(f"channel {self.name!r}: TLS certificate of {c.host} not"
                               f" trusted ({exc.verify_message})", retryable=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelError(f"channel {self.name!r}: {c.host}:{c.effective_port}:"
                               f" {type(exc).__name__}: {exc}") from None
        if refused:
            raise ChannelError(f"channel {self.name!r}: {len(refused)} recipient(s) refused",
                               retryable=False)

    def close(self) -> None:
        pass
