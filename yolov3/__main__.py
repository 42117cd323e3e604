import sys

from yolov3.cli import main

sys.exit(main())
