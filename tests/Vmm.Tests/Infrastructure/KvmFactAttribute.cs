namespace Vmm.Tests.Infrastructure;

/// <summary>A test that needs /dev/kvm: skipped, with the reason printed, only where KVM truly is not there.</summary>
public sealed class KvmFactAttribute : SkippableFactAttribute
{
}

public sealed class KvmTheoryAttribute : SkippableTheoryAttribute
{
}

public static class Host
{
    public static void RequireKvm() =>
        Skip.IfNot(File.Exists("/dev/kvm"), "/dev/kvm is not present on this host: KVM tests cannot run");
}
