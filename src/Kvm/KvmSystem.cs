using Vmm.Linux;
using Vmm.Linux.Kvm;
using Vmm.Ram;

namespace Vmm.Kvm;

/// <summary>
/// The open /dev/kvm: checks the API version and the capabilities the VMM relies on, and creates VMs.
/// </summary>
public sealed class KvmSystem : IDisposable
{
    public const string DevicePath = "/dev/kvm";
    public const int ExpectedApiVersion = 12;

    private static readonly (KvmCapability Capability, string Why)[] Required =
    [
        (KvmCapability.UserMemory, "guest RAM is registered as user memory slots"),
        (KvmCapability.ImmediateExit, "pausing a vCPU relies on kvm_run.immediate_exit"),
        (KvmCapability.SetGuestDebug, "--trace single-steps the guest"),
        (KvmCapability.VcpuEvents, "vCPU state capture for migration"),
        (KvmCapability.MpState, "vCPU state capture for migration"),
    ];

    private readonly FileDescriptor fd;
    private readonly Lazy<byte[]> supportedCpuid;

    private KvmSystem(FileDescriptor fd, int vcpuMmapSize)
    {
        this.fd = fd;
        VcpuMmapSize = vcpuMmapSize;
        supportedCpuid = new Lazy<byte[]>(ReadSupportedCpuid);
    }

    /// <summary>The size of each vCPU's kvm_run mapping.</summary>
    public int VcpuMmapSize { get; }

    public static KvmSystem Open(string path = DevicePath)
    {
        FileDescriptor fd;
        try
        {
            fd = Unistd.Open(path, Unistd.O_RDWR);
        }
        catch (LinuxException e) when (e.Errno == Errno.ENOENT)
        {
            throw new KvmUnavailableException($"{path} does not exist: KVM is not available on this host (is the kvm module loaded, is virtualization enabled?)");
        }
        catch (LinuxException e) when (e.Errno is Errno.EACCES or Errno.EPERM)
        {
            throw new KvmUnavailableException($"permission denied opening {path}: run as root or add your user to the 'kvm' group");
        }
        catch (LinuxException e)
        {
            throw new KvmUnavailableException($"{path} cannot be opened: {e.Message}");
        }

        int version = Ioctl.Invoke(fd.Value, KvmIoctls.GetApiVersion, 0);
        if (version != ExpectedApiVersion)
        {
            fd.Dispose();
            throw new KvmUnavailableException($"{path} reports KVM API version {version}; this VMM needs {ExpectedApiVersion}");
        }

        var system = new KvmSystem(fd, Ioctl.Checked(fd, KvmIoctls.GetVcpuMmapSize, 0, "KVM_GET_VCPU_MMAP_SIZE"));
        foreach ((KvmCapability capability, string why) in Required)
        {
            if (system.CheckExtension(capability) <= 0)
            {
                system.Dispose();
                throw new KvmUnavailableException($"KVM lacks capability {capability} ({why})");
            }
        }

        return system;
    }

    /// <summary>KVM_CHECK_EXTENSION: 0 when absent, otherwise a capability-specific positive value.</summary>
    public int CheckExtension(KvmCapability capability) => Math.Max(0, Ioctl.Invoke(fd.Value, KvmIoctls.CheckExtension, (nint)capability));

    /// <summary>A bare VM: no memory, no vCPUs (the exit-cost benchmark's thin loop, probes, scratch vCPUs).</summary>
    public KvmVm CreateVm()
    {
        int vmFd = Ioctl.Checked(fd, KvmIoctls.CreateVm, 0, "KVM_CREATE_VM");
        return new KvmVm(this, new FileDescriptor(vmFd), null);
    }

    /// <summary>A VM whose memslots mirror the blocks of <paramref name="ram"/>.</summary>
    public KvmVm CreateVm(RamBlockRegistry ram)
    {
        int vmFd = Ioctl.Checked(fd, KvmIoctls.CreateVm, 0, "KVM_CREATE_VM");
        return new KvmVm(this, new FileDescriptor(vmFd), ram);
    }

    /// <summary>KVM_GET_SUPPORTED_CPUID: the CPUID leaves this host can present to a guest (read once).</summary>
    public byte[] GetSupportedCpuid() => supportedCpuid.Value;

    private unsafe byte[] ReadSupportedCpuid()
    {
        const int MaxEntries = 256;
        int size = sizeof(KvmCpuid2Header) + (MaxEntries * sizeof(KvmCpuidEntry2));
        byte[] buffer = new byte[size];
        fixed (byte* pointer = buffer)
        {
            ((KvmCpuid2Header*)pointer)->Nent = MaxEntries;
            Ioctl.Checked(fd, KvmIoctls.GetSupportedCpuid, (nint)pointer, "KVM_GET_SUPPORTED_CPUID");
            int used = sizeof(KvmCpuid2Header) + ((int)((KvmCpuid2Header*)pointer)->Nent * sizeof(KvmCpuidEntry2));
            return buffer[..used];
        }
    }

    public void Dispose() => fd.Dispose();
}
