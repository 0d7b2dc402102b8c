from evolink_mcp.cli import main

main()
