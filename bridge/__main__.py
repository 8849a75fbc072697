import sys

from bridge.launch import main

sys.exit(main())
