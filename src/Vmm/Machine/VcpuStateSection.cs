using System.Runtime.InteropServices;
using Vmm.Accelerator.State;
using Vmm.Kvm;
using Vmm.Linux.Kvm;
using Vmm.Migration;

namespace Vmm.Machine;

/// <summary>
/// A vCPU's state (<see cref="VcpuState"/>) as a versioned migration section ("cpu0", ...): general, segment and
/// control registers, FPU/SSE, XCRs, MSRs (the TSC among them, so guest time continues rather than jumps), pending
/// events and MP state. On the wire these are KVM's structs, byte for byte, whichever accelerator wrote them: the
/// format is the one this VMM has always sent, the ABI tests pin the structs, and a guest saved under KVM loads into
/// the software CPU and back.
/// </summary>
public static class VcpuStateSection
{
    public const int Version = 1;

    /// <summary>More MSRs than any vCPU has: a count above it is a damaged section.</summary>
    private const int MaxMsrs = 256;

    public static string SectionName(int vcpuId) => $"cpu{vcpuId}";

    public static StateSection Encode(int vcpuId, VcpuState state)
    {
        var writer = new StateWriter();
        (KvmRegs regs, KvmSregs sregs) = KvmStateConversion.FromRegisters(state.Registers);
        writer.Struct(regs);
        writer.Struct(sregs);
        writer.Struct(KvmStateConversion.FromFpu(state.Fpu));
        writer.Struct(KvmStateConversion.FromXcrs(state.Xcrs));
        writer.Int(state.Msrs.Count);
        foreach (ModelSpecificRegister msr in state.Msrs)
        {
            writer.Struct(new KvmMsrEntry { Index = msr.Index, Data = msr.Value });
        }

        writer.Struct(KvmStateConversion.FromEvents(state.Events));
        writer.Struct(new KvmMpState { MpState = (uint)state.MpState });
        return new StateSection(SectionName(vcpuId), Version, writer.ToArray());
    }

    public static VcpuState Decode(StateSection section)
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
        if (xcrs.NrXcrs > KvmXcrs.MaxXcrs)
        {
            throw new InvalidDataException($"state section '{section.Name}': implausible XCR count {xcrs.NrXcrs}");
        }

        int count = reader.Int();
        if (count < 0 || count > MaxMsrs)
        {
            throw new InvalidDataException($"state section '{section.Name}': implausible MSR count {count}");
        }

        var msrs = new ModelSpecificRegister[count];
        for (int i = 0; i < count; i++)
        {
            var entry = reader.Struct<KvmMsrEntry>();

            // Checked here, not left to KVM_SET_MSRS: KVM refuses some indices and values only once the vCPU is half
            // loaded, and the software CPU would keep any index at all.
            if (!ModelSpecificRegister.Migrated.Contains(entry.Index) || msrs.Take(i).Any(m => m.Index == entry.Index))
            {
                throw new InvalidDataException($"state section '{section.Name}': MSR 0x{entry.Index:x} is not one this vmm migrates, or appears twice");
            }

            msrs[i] = new ModelSpecificRegister(entry.Index, entry.Data);
        }

        var events = reader.Struct<KvmVcpuEvents>();
        var mpState = reader.Struct<KvmMpState>();
        reader.End();
        return new VcpuState
        {
            Registers = KvmStateConversion.ToRegisters(regs, sregs),
            Fpu = KvmStateConversion.ToFpu(fpu),
            Xcrs = KvmStateConversion.ToXcrs(xcrs),
            Msrs = msrs,
            Events = KvmStateConversion.ToEvents(events),
            MpState = (MpState)mpState.MpState,
        };
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
