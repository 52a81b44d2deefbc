from supactl.cli import main

main()
