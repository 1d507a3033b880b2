from semistylegan.cli import main

raise SystemExit(main())
