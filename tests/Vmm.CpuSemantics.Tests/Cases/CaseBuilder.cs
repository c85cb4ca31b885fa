using Iced.Intel;
using Vmm.CpuSemantics.Tests.Harness;
using IcedCode = Iced.Intel.Code;

namespace Vmm.CpuSemantics.Tests.Cases;

/// <summary>
/// Builds one case: starts from a random state (<see cref="CaseFactory.NextState"/>) and hands out operands (registers
/// and memory in the data area) that hold chosen values, keeping every general register to one use so that operands
/// never overlap by accident. SP is never handed out: a fault pushes its frame at SS:SP.
/// </summary>
public sealed class CaseBuilder
{
    /// <summary>The bytes of the data area memory operands are placed in (the random initial data is this long).</summary>
    public const int OperandArea = 16;

    private static readonly AddressingMode[] Modes = Enum.GetValues<AddressingMode>();

    private readonly CaseFactory _factory;
    private readonly bool[] _claimed = new bool[8];

    internal CaseBuilder(CaseFactory factory)
    {
        _factory = factory;
        State = factory.NextState();
        _claimed[(int)Gpr.Esp] = true;
    }

    public CaseState State { get; }

    /// <summary>Flags the SDM leaves undefined after the code (see <see cref="TestCase.UndefinedFlags"/>).</summary>
    public uint Undefined { get; set; }

    /// <summary>Sets or clears CF, leaving the other random flags.</summary>
    public CaseBuilder Carry(bool set)
    {
        State.SetFlags(EFlags.CF, set);
        return this;
    }

    /// <summary>A free register of <paramref name="width"/> bits (any of AL…BH for 8 bits) holding <paramref name="value"/>.</summary>
    public Register Reg(int width, uint value)
    {
        var free = Enumerable.Range(0, 8).Where(n => !_claimed[width == 8 ? n & 3 : n]).ToList();
        if (free.Count == 0)
        {
            throw new InvalidOperationException("no free register left for this case");
        }

        return Fixed(OperandWidth.Reg(width, _factory.Pick(free)), value);
    }

    /// <summary>Claims <paramref name="register"/> (which the code uses implicitly, like CL or EDX) and gives it <paramref name="value"/>.</summary>
    public Register Fixed(Register register, uint value)
    {
        var gpr = GprOf(register);
        if (_claimed[(int)gpr])
        {
            throw new InvalidOperationException($"{register} is already in use in this case");
        }

        _claimed[(int)gpr] = true;
        State.Set(register, value);
        return register;
    }

    /// <summary>Claims a register without choosing its value (it keeps its random one).</summary>
    public Register Claim(Register register) => Fixed(register, State.Get(register));

    /// <summary>
    /// A memory operand of <paramref name="size"/> bytes holding <paramref name="value"/> (little-endian) at a random
    /// offset of the first <see cref="OperandArea"/> bytes of the data area, reached through a random addressing mode
    /// whose registers are still free.
    /// </summary>
    public MemoryOperand Mem(int size, ulong value) => MemAt(_factory.Next(OperandArea - size + 1), size, value);

    /// <summary>A memory operand at <paramref name="offset"/> of the data area holding <paramref name="value"/>.</summary>
    public MemoryOperand MemAt(int offset, int size, ulong value)
    {
        State.WriteData(offset, value, size);
        return Address(offset);
    }

    /// <summary>A memory operand that addresses <paramref name="offset"/> of the data area (contents as they are).</summary>
    public MemoryOperand Address(int offset)
    {
        var usable = Modes.Where(m => AddressRegisters(m).All(g => !_claimed[(int)g])).ToList();
        if (usable.Count == 0)
        {
            throw new InvalidOperationException("no addressing mode left whose registers are free");
        }

        var mode = _factory.Pick(usable);
        foreach (var gpr in AddressRegisters(mode))
        {
            _claimed[(int)gpr] = true;
        }

        return _factory.PointAtData(State, mode, offset);
    }

    /// <summary>A register or (one time in <paramref name="memoryOneIn"/>) a memory operand holding <paramref name="value"/>.</summary>
    public Operand RegOrMem(int width, uint value, int memoryOneIn = 3) =>
        _factory.Next(memoryOneIn) == 0 ? Mem(width / 8, value) : Reg(width, value);

    public TestCase Build(string form, params Instruction[] code) =>
        new(form, Code16.Encode(code), StubKind.Plain, State) { UndefinedFlags = Undefined };

    /// <summary>A one-instruction case named after the Iced code, with " (mem)" when an operand is in memory.</summary>
    public TestCase Build(IcedCode code, params Operand[] operands) =>
        Build(FormName(code, operands), Operand.Create(code, operands));

    /// <summary>"Adc_rm16_imm8", plus " (mem)" when one of <paramref name="operands"/> is a memory operand.</summary>
    public static string FormName(IcedCode code, params Operand[] operands) =>
        operands.Any(o => o.IsMemory) ? $"{code} (mem)" : code.ToString();

    /// <summary>A case from raw bytes (forms Iced will not encode the way the case wants).</summary>
    public TestCase Build(string form, byte[] code) =>
        new(form, code, StubKind.Plain, State) { UndefinedFlags = Undefined };

    /// <summary>A branch case: <paramref name="before"/>, then <paramref name="branch"/>, recorded as taken or not.</summary>
    public TestCase Branch(string form, IcedCode branch, params Instruction[] before) =>
        new(form, [.. Code16.Encode(before), .. Code16.EncodeBranch(branch)], StubKind.Branch, State) { UndefinedFlags = Undefined };

    public static Gpr GprOf(Register register) => register switch
    {
        >= Register.AL and <= Register.BL => (Gpr)(register - Register.AL),
        >= Register.AH and <= Register.BH => (Gpr)(register - Register.AH),
        >= Register.AX and <= Register.DI => (Gpr)(register - Register.AX),
        >= Register.EAX and <= Register.EDI => (Gpr)(register - Register.EAX),
        _ => throw new ArgumentException($"{register} is not a general register", nameof(register)),
    };

    private static Gpr[] AddressRegisters(AddressingMode mode) => mode switch
    {
        AddressingMode.Bx => [Gpr.Ebx],
        AddressingMode.BxSiDisp8 => [Gpr.Ebx, Gpr.Esi],
        AddressingMode.BpDiDisp16 => [Gpr.Ebp, Gpr.Edi],
        AddressingMode.Ebx32 => [Gpr.Ebx],
        AddressingMode.EbxEsiScaled32 => [Gpr.Ebx, Gpr.Esi],
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, null),
    };
}
