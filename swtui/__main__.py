from swtui.cli import main

raise SystemExit(main())
