"""``python -m gradcheck_cli`` runs the ``gradcheck`` command."""

from gradcheck_cli.cli import main

if __name__ == "__main__":
    main()
