using System.Runtime.CompilerServices;
using Iced.Intel;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>
/// IN and OUT (port in an imm8 or in DX; 8, 16 or 32 bits), through <see cref="Cpu.Io"/>. A port access reaches the
/// device synchronously, and the block ends after it: a device that stops the machine, or raises an interrupt, is
/// seen before the next block. The string forms (INS, OUTS) are in <see cref="Strings"/> and use the helpers here.
/// </summary>
internal static unsafe class PortIo
{
    public static void Register(BinderTable table)
    {
        table.Add(Mnemonic.In, BindIn);
        table.Add(Mnemonic.Out, BindOut);
    }

    private static bool BindIn(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        bool dx = i.Op1Kind == OpKind.Register;
        d.Execute = (Operands.SizeOf(in i, 0), dx) switch
        {
            (1, false) => &In<W8, ImmPort>.Run,
            (2, false) => &In<W16, ImmPort>.Run,
            (4, false) => &In<W32, ImmPort>.Run,
            (1, true) => &In<W8, DxPort>.Run,
            (2, true) => &In<W16, DxPort>.Run,
            (4, true) => &In<W32, DxPort>.Run,
            _ => null,
        };
        return d.Execute != null;
    }

    private static bool BindOut(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        bool dx = i.Op0Kind == OpKind.Register;
        d.Execute = (Operands.SizeOf(in i, 1), dx) switch
        {
            (1, false) => &Out<W8, ImmPort>.Run,
            (2, false) => &Out<W16, ImmPort>.Run,
            (4, false) => &Out<W32, ImmPort>.Run,
            (1, true) => &Out<W8, DxPort>.Run,
            (2, true) => &Out<W16, DxPort>.Run,
            (4, true) => &Out<W32, DxPort>.Run,
            _ => null,
        };
        return d.Execute != null;
    }

    /// <summary>
    /// The I/O privilege check of IN, OUT, INS and OUTS: in protected mode, CPL must not exceed IOPL. The TSS's I/O
    /// permission bitmap is not consulted (this CPU does not implement it), so a CPL above IOPL is always refused.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void RequirePermission(Cpu cpu)
    {
        if (cpu.ProtectedMode && cpu.Cpl > (int)((cpu.FlagsRest & Cpu.IoplMask) >> 12))
        {
            ThrowGeneralProtection();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowGeneralProtection() => throw new CpuException(ExceptionVector.GeneralProtection, 0);

    /// <summary>Reads <typeparamref name="TW"/>'s width from <paramref name="port"/> (the value little-endian, as on the bus).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Read<TW>(Cpu cpu, ushort port)
        where TW : IWidth
    {
        uint value = 0;
        cpu.Io.PortRead(port, new Span<byte>(&value, TW.Size));
        return value;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Write<TW>(Cpu cpu, ushort port, uint value)
        where TW : IWidth => cpu.Io.PortWrite(port, new ReadOnlySpan<byte>(&value, TW.Size));

    /// <summary>Where the port number comes from.</summary>
    private interface IPort
    {
        static abstract ushort Of(Cpu cpu, ref DecodedInstruction d);
    }

    private readonly struct ImmPort : IPort
    {
        public static ushort Of(Cpu cpu, ref DecodedInstruction d) => (byte)d.Imm;
    }

    private readonly struct DxPort : IPort
    {
        public static ushort Of(Cpu cpu, ref DecodedInstruction d) => cpu.GetReg16(RegisterIndex.Edx);
    }

    private static class In<TW, TPort>
        where TW : IWidth
        where TPort : IPort
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            RequirePermission(cpu);
            TW.SetReg(cpu, RegisterIndex.Eax, Read<TW>(cpu, TPort.Of(cpu, ref d)));
            cpu.Stop |= Cpu.StopAfter;
        }
    }

    private static class Out<TW, TPort>
        where TW : IWidth
        where TPort : IPort
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            RequirePermission(cpu);
            Write<TW>(cpu, TPort.Of(cpu, ref d), TW.GetReg(cpu, RegisterIndex.Eax) & TW.Mask);
            cpu.Stop |= Cpu.StopAfter;
        }
    }
}
