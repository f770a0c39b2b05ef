import sys

from pas_orchestrator.cli import main

sys.exit(main())
