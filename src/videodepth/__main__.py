from videodepth.cli import main

raise SystemExit(main())
