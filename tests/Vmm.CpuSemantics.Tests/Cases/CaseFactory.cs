using Iced.Intel;
using Vmm.CpuSemantics.Tests.Harness;
using IcedCode = Iced.Intel.Code;

namespace Vmm.CpuSemantics.Tests.Cases;

/// <summary>
/// Deterministic (seeded) building blocks for cases: random initial states, operands of every size, and memory
/// operands that point into the data area under 16-bit and 32-bit addressing.
/// </summary>
public sealed class CaseFactory(int seed)
{
    private readonly Random _random = new(seed);

    public uint NextUInt() => (uint)_random.NextInt64(0, 1L << 32);

    public int Next(int maxExclusive) => _random.Next(maxExclusive);

    public bool NextBool() => _random.Next(2) == 1;

    public T Pick<T>(IReadOnlyList<T> items) => items[_random.Next(items.Count)];

    public byte[] NextBytes(int count)
    {
        var bytes = new byte[count];
        _random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>Random CF/PF/AF/ZF/SF/OF/DF (bit 1 set, IF and TF clear, so nothing can interrupt a case).</summary>
    public uint NextFlags() => EFlags.Reserved1 | (NextUInt() & EFlags.CaseControlled);

    /// <summary>
    /// A random state: every register random except SP (0E00, inside SS = 0, so an exception frame lands outside the
    /// compared memory; the upper half of ESP is random, as a 16-bit stack must leave it), random flags, DS = ES =
    /// the data segment, 16 random data bytes.
    /// </summary>
    public CaseState NextState()
    {
        var state = new CaseState { Eflags = NextFlags(), Data = NextBytes(16) };
        for (var r = Gpr.Eax; r <= Gpr.Edi; r++)
        {
            state[r] = NextUInt();
        }

        state[Gpr.Esp] = (NextUInt() & 0xFFFF_0000) | MemoryMap.DefaultCaseStackPointer;
        return state;
    }

    /// <summary>A random value of <paramref name="width"/> bits.</summary>
    public uint NextValue(int width) => NextUInt() & OperandWidth.Mask(width);

    /// <summary>A builder for one case, starting from <see cref="NextState"/>.</summary>
    public CaseBuilder Begin() => new(this);

    /// <summary>
    /// Operand values for <paramref name="width"/> bits: every edge value, then <paramref name="randomCount"/> random
    /// ones (half of them with few bits set or clear, which random words rarely have).
    /// </summary>
    public IEnumerable<uint> Values(int width, int randomCount)
    {
        foreach (var edge in EdgeValues.For(width))
        {
            yield return edge;
        }

        for (var i = 0; i < randomCount; i++)
        {
            yield return Interesting(width);
        }
    }

    /// <summary>
    /// Operand pairs for <paramref name="width"/> bits: every pair of edge values, then <paramref name="randomCount"/>
    /// pairs of random values, then as many pairs of one edge and one random value.
    /// </summary>
    public IEnumerable<(uint A, uint B)> Pairs(int width, int randomCount)
    {
        var edges = EdgeValues.For(width);
        foreach (var a in edges)
        {
            foreach (var b in edges)
            {
                yield return (a, b);
            }
        }

        for (var i = 0; i < randomCount; i++)
        {
            yield return (Interesting(width), Interesting(width));
        }

        for (var i = 0; i < randomCount; i++)
        {
            yield return NextBool() ? (Pick(edges), Interesting(width)) : (Interesting(width), Pick(edges));
        }
    }

    /// <summary>A random value, or one time in four a sparse one (one or two bits set, or clear).</summary>
    public uint Interesting(int width)
    {
        var mask = OperandWidth.Mask(width);
        var value = Next(4) switch
        {
            0 => (1u << Next(width)) | (1u << Next(width)),
            1 => ~((1u << Next(width)) | (1u << Next(width))),
            _ => NextUInt(),
        };
        return value & mask;
    }

    public static TestCase Case(string form, CaseState state, params Instruction[] instructions) =>
        new(form, Code16.Encode(instructions), StubKind.Plain, state);

    public static TestCase Branch(string form, CaseState state, IcedCode branch) =>
        new(form, Code16.EncodeBranch(branch), StubKind.Branch, state);

    /// <summary>
    /// A memory operand for the data area at <paramref name="offset"/>, addressed as <paramref name="mode"/> says;
    /// sets the address registers (and DS/SS) in <paramref name="state"/> to make it so. Address registers are BX, SI,
    /// BP, DI (EBX, ESI with 32-bit addressing): cases that use memory operands keep their other operands out of them.
    /// </summary>
    public MemoryOperand PointAtData(CaseState state, AddressingMode mode, int offset)
    {
        switch (mode)
        {
            case AddressingMode.Bx:
                // 16-bit addressing ignores the upper halves, which stay random.
                state.Set(Register.BX, (uint)offset);
                return new MemoryOperand(Register.BX);
            case AddressingMode.BxSiDisp8:
            {
                var disp = Next(0x80);
                var si = (uint)Next(0x100);
                state.Set(Register.SI, si);
                state.Set(Register.BX, (uint)(offset - disp - (int)si) & 0xFFFF);
                return new MemoryOperand(Register.BX, Register.SI, 1, disp, 1);
            }
            case AddressingMode.BpDiDisp16:
            {
                // BP-based addresses use SS: point SS at the data segment too, keeping SP where it was.
                state.Ss = MemoryMap.DataSegment;
                var disp = 0x1000 + Next(0x4000);
                var di = (uint)Next(0x1000);
                state.Set(Register.DI, di);
                state.Set(Register.BP, (uint)(offset - disp - (int)di) & 0xFFFF);
                return new MemoryOperand(Register.BP, Register.DI, 1, disp, 2);
            }
            case AddressingMode.Ebx32:
                state[Gpr.Ebx] = (uint)offset;
                return new MemoryOperand(Register.EBX);
            case AddressingMode.EbxEsiScaled32:
            {
                // Large parts whose 32-bit sum wraps to the offset: the effective address must be computed mod 2^32.
                var disp = (int)(NextUInt() & 0x0FFF_FFFF) - 0x0800_0000;
                var esi = NextUInt() & 0x00FF_FFFF;
                state[Gpr.Esi] = esi;
                state[Gpr.Ebx] = (uint)(offset - disp - esi * 4);
                return new MemoryOperand(Register.EBX, Register.ESI, 4, disp, 4);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(mode), mode, null);
        }
    }
}
