using Vmm.Cli;

return VmmCommandLine.Invoke(args);
