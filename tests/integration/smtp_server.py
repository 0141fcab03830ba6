"""An SMTP server for the mail tests: aiosmtpd with STARTTLS and, if asked,
AUTH, delivering into a maildir. Each stored mail gets X-TLS (yes/no) and
X-Auth (the login, or "-") headers, beside aiosmtpd's X-MailFrom and
X-RcptTo, so a test can see how it arrived. Recipients whose address
starts with "refuse" are refused (550). Listens on 127.0.0.1 only; prints
"ready" once it accepts connections; stops on SIGTERM.

/usr/bin/python3 smtp_server.py --port N --maildir DIR --cert C --key K [--user U --password P]
"""

import argparse
import signal
import ssl

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword


class MarkingMailbox(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("refuse"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def prepare_message(self, session, envelope):
        message = super().prepare_message(session, envelope)
        message["X-TLS"] = "yes" if session.ssl is not None else "no"
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else "-"
        message["X-Auth"] = login if session.authenticated else "-"
        return message


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and args.user is not None and
              auth_data.login == args.user.encode() and auth_data.password == args.password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    controller = Controller(MarkingMailbox(args.maildir), hostname="127.0.0.1", port=args.port,
                            server_hostname="localhost", tls_context=context, require_starttls=True,
                            authenticator=authenticator, auth_required=args.user is not None,
                            auth_require_tls=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    controller.start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


if __name__ == "__main__":
    main()
