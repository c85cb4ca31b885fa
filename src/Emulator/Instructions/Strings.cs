using System.Runtime.CompilerServices;
using Iced.Intel;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>
/// The string instructions MOVS CMPS SCAS LODS STOS INS OUTS (8, 16, 32 bits), alone or with REP/REPE/REPNE. The
/// source is seg:(E)SI with seg = DS or the override; the destination is always ES:(E)DI. SI/DI/CX or ESI/EDI/ECX by
/// the address size; DF picks the direction.
/// </summary>
/// <remarks>
/// A REP loop is restartable: the registers are updated after every element, so when an element faults they say
/// how far it got, and the execution loop's exception path leaves EIP on the instruction to resume it. A long loop
/// gives the execution loop a chance to see a kick: after <see cref="KickInterval"/> elements it stops with EIP on
/// the instruction, which runs again from the next block lookup.
/// <para>
/// REP STOS and REPE/REPNE SCAS going forward also have a bulk path (memtest's fill and verify, a boot sector's
/// clearing of memory): the elements up to the end of the page become one span fill or one vectorised search when the
/// page is plain RAM and the segment limit covers them all. Anything else — a page of code, MMIO, the limit, the
/// 16-bit address wrap — leaves the elements to the one-at-a-time loop, which faults on exactly the right one.
/// </para>
/// </remarks>
internal static unsafe class Strings
{
    /// <summary>Elements a REP loop runs before it lets the execution loop check for a kick.</summary>
    public const int KickInterval = 4096;

    public static void Register(BinderTable table)
    {
        table.Add(Mnemonic.Movsb, Bind<Movs>);
        table.Add(Mnemonic.Movsw, Bind<Movs>);
        table.Add(Mnemonic.Movsd, Bind<Movs>);
        table.Add(Mnemonic.Cmpsb, Bind<Cmps>);
        table.Add(Mnemonic.Cmpsw, Bind<Cmps>);
        table.Add(Mnemonic.Cmpsd, Bind<Cmps>);
        table.Add(Mnemonic.Scasb, Bind<Scas>);
        table.Add(Mnemonic.Scasw, Bind<Scas>);
        table.Add(Mnemonic.Scasd, Bind<Scas>);
        table.Add(Mnemonic.Lodsb, Bind<Lods>);
        table.Add(Mnemonic.Lodsw, Bind<Lods>);
        table.Add(Mnemonic.Lodsd, Bind<Lods>);
        table.Add(Mnemonic.Stosb, Bind<Stos>);
        table.Add(Mnemonic.Stosw, Bind<Stos>);
        table.Add(Mnemonic.Stosd, Bind<Stos>);
        table.Add(Mnemonic.Insb, Bind<Ins>);
        table.Add(Mnemonic.Insw, Bind<Ins>);
        table.Add(Mnemonic.Insd, Bind<Ins>);
        table.Add(Mnemonic.Outsb, Bind<Outs>);
        table.Add(Mnemonic.Outsw, Bind<Outs>);
        table.Add(Mnemonic.Outsd, Bind<Outs>);
    }

    private static bool Bind<TOp>(in Instruction i, ref DecodedInstruction d, BindContext c)
        where TOp : IStringOp
    {
        // MOVSD and CMPSD are also SSE2 mnemonics (F2 0F 10, F2 0F C2): only the string forms are taken here.
        if (i.Code is Code.Movsd_xmm_xmmm64 or Code.Movsd_xmmm64_xmm or Code.Cmpsd_xmm_xmmm64_imm8)
        {
            return false;
        }

        int size = i.Mnemonic switch
        {
            Mnemonic.Movsb or Mnemonic.Cmpsb or Mnemonic.Scasb or Mnemonic.Lodsb or Mnemonic.Stosb or Mnemonic.Insb or Mnemonic.Outsb => 1,
            Mnemonic.Movsw or Mnemonic.Cmpsw or Mnemonic.Scasw or Mnemonic.Lodsw or Mnemonic.Stosw or Mnemonic.Insw or Mnemonic.Outsw => 2,
            _ => 4,
        };

        // F2 and F3 are both a plain REP for the instructions that do not compare (the CPU ignores the Z condition).
        RepKind rep = !i.HasRepPrefix && !i.HasRepnePrefix ? RepKind.None
            : !TOp.Compares ? RepKind.Rep
            : i.HasRepnePrefix ? RepKind.RepNe
            : RepKind.RepE;
        d.Execute = c.Address32 ? ByWidth<TOp, A32>(size, rep) : ByWidth<TOp, A16>(size, rep);
        return d.Execute != null;
    }

    private enum RepKind
    {
        None,
        Rep,
        RepE,
        RepNe,
    }

    private static delegate*<Cpu, ref DecodedInstruction, void> ByWidth<TOp, TA>(int size, RepKind rep)
        where TOp : IStringOp
        where TA : IAddressSize => (size, rep) switch
        {
            (1, RepKind.None) => &Single<TOp, W8, TA>.Run,
            (2, RepKind.None) => &Single<TOp, W16, TA>.Run,
            (4, RepKind.None) => &Single<TOp, W32, TA>.Run,
            (1, RepKind.Rep) => &Repeat<TOp, W8, TA, Always>.Run,
            (2, RepKind.Rep) => &Repeat<TOp, W16, TA, Always>.Run,
            (4, RepKind.Rep) => &Repeat<TOp, W32, TA, Always>.Run,
            (1, RepKind.RepE) => &Repeat<TOp, W8, TA, WhileEqual>.Run,
            (2, RepKind.RepE) => &Repeat<TOp, W16, TA, WhileEqual>.Run,
            (4, RepKind.RepE) => &Repeat<TOp, W32, TA, WhileEqual>.Run,
            (1, RepKind.RepNe) => &Repeat<TOp, W8, TA, WhileNotEqual>.Run,
            (2, RepKind.RepNe) => &Repeat<TOp, W16, TA, WhileNotEqual>.Run,
            (4, RepKind.RepNe) => &Repeat<TOp, W32, TA, WhileNotEqual>.Run,
            _ => null,
        };

    /// <summary>One element of a string instruction.</summary>
    private interface IStringOp
    {
        /// <summary>CMPS and SCAS: REPE/REPNE test ZF after each element.</summary>
        static abstract bool Compares { get; }

        /// <summary>INS and OUTS: the I/O privilege check, and the block ends after them.</summary>
        static abstract bool UsesPorts { get; }

        /// <summary>Does one element and steps the index registers; for a comparison returns whether the two were equal.</summary>
        static abstract bool Element<TW, TA>(Cpu cpu, int seg, int step)
            where TW : IWidth
            where TA : IAddressSize;

        /// <summary>
        /// Forward, at most <paramref name="count"/> elements as one host operation, up to the end of a page; returns
        /// how many were done (registers and flags as after that many elements), 0 when the bulk path does not apply.
        /// <paramref name="ended"/>: a comparison ended the loop.
        /// </summary>
        static virtual uint Bulk<TW, TA, TCondition>(Cpu cpu, int seg, uint count, out bool ended)
            where TW : IWidth
            where TA : IAddressSize
            where TCondition : IRepCondition
        {
            ended = false;
            return 0;
        }
    }

    /// <summary>What ends a REP loop early, given whether the element just compared equal (ZF).</summary>
    private interface IRepCondition
    {
        static abstract bool Continues(bool equal);
    }

    private readonly struct Always : IRepCondition
    {
        public static bool Continues(bool equal) => true;
    }

    private readonly struct WhileEqual : IRepCondition
    {
        public static bool Continues(bool equal) => equal;
    }

    private readonly struct WhileNotEqual : IRepCondition
    {
        public static bool Continues(bool equal) => !equal;
    }

    /// <summary>
    /// Where a forward bulk operation on ES:(E)DI may work: the host address of its first element and how many of
    /// <paramref name="count"/> elements it may take (up to the end of the page, without the 16-bit offset wrapping,
    /// at most <see cref="KickInterval"/>), or null when not even one fits in plain RAM within the limit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte* BulkTarget<TW, TA>(Cpu cpu, uint count, bool write, out uint offset, out uint n)
        where TW : IWidth
        where TA : IAddressSize
    {
        offset = TA.Get(cpu, RegisterIndex.Edi);
        n = Math.Min(Math.Min(count, KickInterval), cpu.BytesToPageEnd(SegmentIndex.Es, offset) / (uint)TW.Size);
        if (n == 0 || (ulong)offset + ((ulong)n * (uint)TW.Size) - 1 > TA.Mask)
        {
            return null;
        }

        return cpu.HostRange(SegmentIndex.Es, offset, n * (uint)TW.Size, write);
    }

    private static class Single<TOp, TW, TA>
        where TOp : IStringOp
        where TW : IWidth
        where TA : IAddressSize
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            if (TOp.UsesPorts)
            {
                PortIo.RequirePermission(cpu);
                cpu.Stop |= Cpu.StopAfter;
            }

            TOp.Element<TW, TA>(cpu, d.Segment, cpu.Step(TW.Size));
        }
    }

    private static class Repeat<TOp, TW, TA, TCondition>
        where TOp : IStringOp
        where TW : IWidth
        where TA : IAddressSize
        where TCondition : IRepCondition
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            uint count = TA.Get(cpu, RegisterIndex.Ecx);
            if (count == 0)
            {
                return;
            }

            if (TOp.UsesPorts)
            {
                PortIo.RequirePermission(cpu);
                cpu.Stop |= Cpu.StopAfter;
            }

            int seg = d.Segment;
            int step = cpu.Step(TW.Size);
            if (step > 0)
            {
                uint bulk = 0;
                while (true)
                {
                    uint n = TOp.Bulk<TW, TA, TCondition>(cpu, seg, count, out bool ended);
                    if (n == 0)
                    {
                        break;
                    }

                    count = (count - n) & TA.Mask;
                    TA.Set(cpu, RegisterIndex.Ecx, count);
                    if (count == 0 || ended)
                    {
                        return;
                    }

                    bulk += n;
                    if (bulk >= KickInterval)
                    {
                        cpu.Eip = d.Ip;
                        cpu.Stop |= Cpu.StopJumped;
                        return;
                    }
                }
            }

            for (int done = 1; ; done++)
            {
                bool equal = TOp.Element<TW, TA>(cpu, seg, step);
                count = (count - 1) & TA.Mask;
                TA.Set(cpu, RegisterIndex.Ecx, count);
                if (count == 0 || (TOp.Compares && !TCondition.Continues(equal)))
                {
                    return;
                }

                if (done == KickInterval)
                {
                    // Not finished: run it again from the top of the execution loop, after a check for a kick.
                    cpu.Eip = d.Ip;
                    cpu.Stop |= Cpu.StopJumped;
                    return;
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Advance<TA>(Cpu cpu, int index, int step)
        where TA : IAddressSize => TA.Set(cpu, index, TA.Get(cpu, index) + (uint)step);

    private readonly struct Movs : IStringOp
    {
        public static bool Compares => false;

        public static bool UsesPorts => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Element<TW, TA>(Cpu cpu, int seg, int step)
            where TW : IWidth
            where TA : IAddressSize
        {
            uint value = TW.Read(cpu, seg, TA.Get(cpu, RegisterIndex.Esi));
            TW.Write(cpu, SegmentIndex.Es, TA.Get(cpu, RegisterIndex.Edi), value);
            Advance<TA>(cpu, RegisterIndex.Esi, step);
            Advance<TA>(cpu, RegisterIndex.Edi, step);
            return false;
        }
    }

    /// <summary>CMPS: flags of [seg:SI] − [ES:DI], as CMP.</summary>
    private readonly struct Cmps : IStringOp
    {
        public static bool Compares => true;

        public static bool UsesPorts => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Element<TW, TA>(Cpu cpu, int seg, int step)
            where TW : IWidth
            where TA : IAddressSize
        {
            uint source = TW.Read(cpu, seg, TA.Get(cpu, RegisterIndex.Esi));
            uint destination = TW.Read(cpu, SegmentIndex.Es, TA.Get(cpu, RegisterIndex.Edi));
            Arithmetic.Sub.Apply<TW>(cpu, source, destination);
            Advance<TA>(cpu, RegisterIndex.Esi, step);
            Advance<TA>(cpu, RegisterIndex.Edi, step);
            return source == destination;
        }
    }

    /// <summary>SCAS: flags of accumulator − [ES:DI], as CMP.</summary>
    private readonly struct Scas : IStringOp
    {
        public static bool Compares => true;

        public static bool UsesPorts => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Element<TW, TA>(Cpu cpu, int seg, int step)
            where TW : IWidth
            where TA : IAddressSize
        {
            uint accumulator = TW.GetReg(cpu, RegisterIndex.Eax);
            uint destination = TW.Read(cpu, SegmentIndex.Es, TA.Get(cpu, RegisterIndex.Edi));
            Arithmetic.Sub.Apply<TW>(cpu, accumulator, destination);
            Advance<TA>(cpu, RegisterIndex.Edi, step);
            return accumulator == destination;
        }

        /// <summary>REPE: the first element that differs; REPNE: the first that is equal. Flags as its comparison left them.</summary>
        public static uint Bulk<TW, TA, TCondition>(Cpu cpu, int seg, uint count, out bool ended)
            where TW : IWidth
            where TA : IAddressSize
            where TCondition : IRepCondition
        {
            ended = false;
            byte* host = BulkTarget<TW, TA>(cpu, count, write: false, out uint offset, out uint n);
            if (host == null)
            {
                return 0;
            }

            uint accumulator = TW.GetReg(cpu, RegisterIndex.Eax);
            bool stopOnEqual = !TCondition.Continues(true);
            int found = TW.Size switch
            {
                1 => Search(new ReadOnlySpan<byte>(host, (int)n), (byte)accumulator, stopOnEqual),
                2 => Search(new ReadOnlySpan<ushort>(host, (int)n), (ushort)accumulator, stopOnEqual),
                _ => Search(new ReadOnlySpan<uint>(host, (int)n), accumulator, stopOnEqual),
            };
            uint done = found < 0 ? n : (uint)found + 1;
            ended = found >= 0;
            uint last = TW.Size switch
            {
                1 => host[done - 1],
                2 => ((ushort*)host)[done - 1],
                _ => ((uint*)host)[done - 1],
            };
            Arithmetic.Sub.Apply<TW>(cpu, accumulator, last);
            TA.Set(cpu, RegisterIndex.Edi, offset + (done * (uint)TW.Size));
            return done;
        }

        private static int Search<T>(ReadOnlySpan<T> elements, T accumulator, bool stopOnEqual)
            where T : unmanaged, IEquatable<T> =>
            stopOnEqual ? elements.IndexOf(accumulator) : elements.IndexOfAnyExcept(accumulator);
    }

    private readonly struct Lods : IStringOp
    {
        public static bool Compares => false;

        public static bool UsesPorts => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Element<TW, TA>(Cpu cpu, int seg, int step)
            where TW : IWidth
            where TA : IAddressSize
        {
            TW.SetReg(cpu, RegisterIndex.Eax, TW.Read(cpu, seg, TA.Get(cpu, RegisterIndex.Esi)));
            Advance<TA>(cpu, RegisterIndex.Esi, step);
            return false;
        }
    }

    private readonly struct Stos : IStringOp
    {
        public static bool Compares => false;

        public static bool UsesPorts => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Element<TW, TA>(Cpu cpu, int seg, int step)
            where TW : IWidth
            where TA : IAddressSize
        {
            TW.Write(cpu, SegmentIndex.Es, TA.Get(cpu, RegisterIndex.Edi), TW.GetReg(cpu, RegisterIndex.Eax));
            Advance<TA>(cpu, RegisterIndex.Edi, step);
            return false;
        }

        public static uint Bulk<TW, TA, TCondition>(Cpu cpu, int seg, uint count, out bool ended)
            where TW : IWidth
            where TA : IAddressSize
            where TCondition : IRepCondition
        {
            ended = false;
            byte* host = BulkTarget<TW, TA>(cpu, count, write: true, out uint offset, out uint n);
            if (host == null)
            {
                return 0;
            }

            uint value = TW.GetReg(cpu, RegisterIndex.Eax);
            switch (TW.Size)
            {
                case 1:
                    new Span<byte>(host, (int)n).Fill((byte)value);
                    break;
                case 2:
                    new Span<ushort>(host, (int)n).Fill((ushort)value);
                    break;
                default:
                    new Span<uint>(host, (int)n).Fill(value);
                    break;
            }

            cpu.MarkDirty(SegmentIndex.Es, offset);
            TA.Set(cpu, RegisterIndex.Edi, offset + (n * (uint)TW.Size));
            return n;
        }
    }

    /// <summary>
    /// INS: the destination is checked before the port is read, so that a fault on the write does not lose a value
    /// the device has already handed over (the read is not repeatable).
    /// </summary>
    private readonly struct Ins : IStringOp
    {
        public static bool Compares => false;

        public static bool UsesPorts => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Element<TW, TA>(Cpu cpu, int seg, int step)
            where TW : IWidth
            where TA : IAddressSize
        {
            uint offset = TA.Get(cpu, RegisterIndex.Edi);
            if ((long)offset + TW.Size - 1 > cpu.WriteLimit[SegmentIndex.Es])
            {
                cpu.CheckSegmentSlow(SegmentIndex.Es, offset, TW.Size, write: true);
            }

            uint value = PortIo.Read<TW>(cpu, cpu.GetReg16(RegisterIndex.Edx));
            TW.Write(cpu, SegmentIndex.Es, offset, value);
            Advance<TA>(cpu, RegisterIndex.Edi, step);
            return false;
        }
    }

    private readonly struct Outs : IStringOp
    {
        public static bool Compares => false;

        public static bool UsesPorts => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Element<TW, TA>(Cpu cpu, int seg, int step)
            where TW : IWidth
            where TA : IAddressSize
        {
            uint value = TW.Read(cpu, seg, TA.Get(cpu, RegisterIndex.Esi));
            PortIo.Write<TW>(cpu, cpu.GetReg16(RegisterIndex.Edx), value);
            Advance<TA>(cpu, RegisterIndex.Esi, step);
            return false;
        }
    }
}

/// <summary>
/// An address size as a type, for instructions whose implicit registers follow it: SI/DI/CX or ESI/EDI/ECX (string
/// instructions), CX or ECX (LOOP, JCXZ). A 16-bit update leaves the upper half of the register alone.
/// </summary>
internal interface IAddressSize
{
    static abstract uint Mask { get; }

    static abstract uint Get(Cpu cpu, int index);

    static abstract void Set(Cpu cpu, int index, uint value);
}

internal readonly unsafe struct A16 : IAddressSize
{
    public static uint Mask => 0xFFFF;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Get(Cpu cpu, int index) => *(ushort*)(cpu.Regs + index);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Set(Cpu cpu, int index, uint value) => *(ushort*)(cpu.Regs + index) = (ushort)value;
}

internal readonly unsafe struct A32 : IAddressSize
{
    public static uint Mask => 0xFFFF_FFFF;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Get(Cpu cpu, int index) => cpu.Regs[index];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Set(Cpu cpu, int index, uint value) => cpu.Regs[index] = value;
}
