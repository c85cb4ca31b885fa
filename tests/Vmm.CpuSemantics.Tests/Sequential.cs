// Every test boots QEMU and vmm side by side, which already keeps both cores of a small build machine busy; running
// tests in parallel on top only makes each slower and their timeouts less meaningful.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
