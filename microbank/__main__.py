from microbank.cli import main

raise SystemExit(main())
