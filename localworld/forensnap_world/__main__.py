"""``python -m forensnap_world serve|seed|selftest ...``"""

import sys


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("serve", "seed", "selftest"):
        sys.exit("usage: python -m forensnap_world serve|seed|selftest [options]")
    command, argv = sys.argv[1], sys.argv[2:]
    if command == "serve":
        from .server import main_serve

        main_serve(argv)
    elif command == "seed":
        from .seed import main_seed

        main_seed(argv)
    else:
        from .selftest import main_selftest

        main_selftest(argv)


if __name__ == "__main__":
    main()
