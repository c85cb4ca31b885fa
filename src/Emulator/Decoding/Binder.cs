using Iced.Intel;

namespace Vmm.Emulator.Decoding;

/// <summary>
/// Chooses the handler for one form of a mnemonic and fills what the shared fields do not (a condition code, an
/// extended immediate). Returns false for a form the CPU does not implement (it then raises #UD).
/// </summary>
internal delegate bool Binder(in Instruction instruction, ref DecodedInstruction d, BindContext context);

/// <summary>Sizes the binder may need that Iced leaves implicit.</summary>
/// <param name="Code32">CS.D: the code is 32-bit.</param>
/// <param name="Operand32">The effective operand size is 32 bits (CS.D xor a 0x66 prefix).</param>
/// <param name="Address32">The effective address size is 32 bits (CS.D xor a 0x67 prefix).</param>
internal readonly record struct BindContext(bool Code32, bool Operand32, bool Address32)
{
    public int OperandSize => Operand32 ? 4 : 2;
}

/// <summary>The mnemonic → binder table each instruction family fills in.</summary>
internal sealed class BinderTable
{
    public Binder?[] Binders { get; } = new Binder?[Enum.GetValues<Mnemonic>().Length + 1];

    public void Add(Mnemonic mnemonic, Binder binder)
    {
        if (Binders[(int)mnemonic] is not null)
        {
            throw new InvalidOperationException($"two binders for {mnemonic}");
        }

        Binders[(int)mnemonic] = binder;
    }
}
