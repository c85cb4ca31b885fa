using System.Runtime.InteropServices;
using Vmm.Kvm;
using Vmm.Linux;
using Vmm.Linux.Kvm;
using Vmm.Migration;

namespace Vmm.Machine;

/// <summary>
/// A vCPU's architectural state as a versioned section ("cpu0", ...): general, segment and control registers, FPU/SSE,
/// XCRs, MSRs (the TSC among them, so guest time continues rather than jumps), pending events and MP state. The
/// kernel structs are carried as their raw bytes: both ends are this VMM on x86-64 KVM, and the ABI tests pin them.
/// </summary>
public static class VcpuState
{
    public const int Version = 1;

    /// <summary>MSRs worth carrying for these guests; those the host's KVM cannot read are skipped at save time.</summary>
    private static readonly uint[] CandidateMsrs =
    [
        0x10,        // IA32_TSC
        0x3B,        // IA32_TSC_ADJUST
        0x174,       // SYSENTER_CS
        0x175,       // SYSENTER_ESP
        0x176,       // SYSENTER_EIP
        0x1A0,       // IA32_MISC_ENABLE
        0x277,       // IA32_PAT
        0xC0000081,  // STAR
        0xC0000082,  // LSTAR
        0xC0000083,  // CSTAR
        0xC0000084,  // SFMASK
        0xC0000102,  // KERNEL_GS_BASE
        0xC0000103,  // TSC_AUX
    ];

    public static string SectionName(int vcpuId) => $"cpu{vcpuId}";

    /// <summary>Captures the state; the vCPU must be parked.</summary>
    public static StateSection Save(KvmVcpu vcpu)
    {
        var writer = new StateWriter();
        writer.Struct(vcpu.GetRegs());
        writer.Struct(vcpu.GetSregs());
        writer.Struct(vcpu.GetFpu());
        writer.Struct(vcpu.GetXcrs());
        // One KVM_GET_MSRS for all of them (this runs in the downtime, an ioctl costs microseconds here); KVM stops at
        // the first MSR it cannot read, and then each is asked for alone so that the readable ones are all kept.
        var msrs = new List<KvmMsrEntry>(vcpu.GetMsrs(CandidateMsrs));
        if (msrs.Count != CandidateMsrs.Length)
        {
            msrs.Clear();
            foreach (uint index in CandidateMsrs)
            {
                msrs.AddRange(vcpu.GetMsrs([index]));
            }
        }

        writer.Int(msrs.Count);
        foreach (KvmMsrEntry msr in msrs)
        {
            writer.Struct(msr);
        }

        writer.Struct(vcpu.GetVcpuEvents());
        writer.Struct(vcpu.GetMpState());
        return new StateSection(SectionName(vcpu.Id), Version, writer.ToArray());
    }

    /// <summary>
    /// From a saved state, the guest-physical addresses the vCPU touches first when it runs again: its instruction
    /// (up to 15 bytes, so possibly two pages) and its stack at SP (a pop or ret reads it) and just below (a push
    /// writes there), within a 16- or 32-bit stack segment. None with paging on: those would be virtual addresses.
    /// </summary>
    public static IEnumerable<ulong> FirstTouchAddresses(StateSection section)
    {
        var reader = new StateReader(section.Name, section.Data);
        var regs = reader.Struct<KvmRegs>();
        var sregs = reader.Struct<KvmSregs>();
        if ((sregs.Cr0 & KvmSregs.Cr0PagingEnabled) != 0)
        {
            return [];
        }

        (ulong stackMask, ulong pushSize) = sregs.Ss.Db != 0 ? (0xFFFF_FFFFul, 4ul) : (0xFFFFul, 2ul);
        return
        [
            sregs.Cs.Base + regs.Rip,
            sregs.Cs.Base + regs.Rip + 14,
            sregs.Ss.Base + (regs.Rsp & stackMask),
            sregs.Ss.Base + ((regs.Rsp - pushSize) & stackMask),
        ];
    }

    /// <summary>Loads a saved state into a parked vCPU, in the order KVM needs (sregs before MSRs, events last).</summary>
    public static void Load(KvmVcpu vcpu, StateSection section)
    {
        if (section.Version != Version)
        {
            throw new InvalidDataException($"state section '{section.Name}' has version {section.Version}; this vmm reads version {Version}");
        }

        var reader = new StateReader(section.Name, section.Data);
        var regs = reader.Struct<KvmRegs>();
        var sregs = reader.Struct<KvmSregs>();
        var fpu = reader.Struct<KvmFpu>();
        var xcrs = reader.Struct<KvmXcrs>();
        int count = reader.Int();
        if (count < 0 || count > 256)
        {
            throw new InvalidDataException($"state section '{section.Name}': implausible MSR count {count}");
        }

        var msrs = new KvmMsrEntry[count];
        for (int i = 0; i < count; i++)
        {
            msrs[i] = reader.Struct<KvmMsrEntry>();
        }

        var events = reader.Struct<KvmVcpuEvents>();
        var mpState = reader.Struct<KvmMpState>();
        reader.End();

        vcpu.SetSregs(sregs);
        vcpu.SetRegs(regs);
        vcpu.SetFpu(fpu);
        if (xcrs.NrXcrs > 0)
        {
            vcpu.SetXcrs(xcrs);
        }

        vcpu.SetMsrs(msrs);
        vcpu.SetVcpuEvents(events);
        vcpu.SetMpState(mpState);
    }

    private sealed class StateWriter
    {
        private readonly MemoryStream stream = new();

        public void Struct<T>(T value)
            where T : unmanaged => stream.Write(MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)));

        public void Int(int value) => Struct(value);

        public byte[] ToArray() => stream.ToArray();
    }

    private ref struct StateReader(string name, ReadOnlySpan<byte> data)
    {
        private ReadOnlySpan<byte> rest = data;

        public T Struct<T>()
            where T : unmanaged
        {
            int size = Marshal.SizeOf<T>();
            if (rest.Length < size)
            {
                throw new InvalidDataException($"state section '{name}' is truncated");
            }

            T value = MemoryMarshal.Read<T>(rest);
            rest = rest[size..];
            return value;
        }

        public int Int() => Struct<int>();

        public readonly void End()
        {
            if (rest.Length != 0)
            {
                throw new InvalidDataException($"state section '{name}' has {rest.Length} unexpected trailing bytes");
            }
        }
    }
}
