namespace Vmm.Guests;

/// <summary>
/// One test guest: a flat x86 real-mode image loaded at 0x7C00 and entered at
/// 0000:7C00 (see guests/README.md for the machine contract it is written to).
/// </summary>
public interface IGuest
{
    /// <summary>File name stem: the builder writes <c>NAME.bin</c>. Lower-case, stable: tests refer to it.</summary>
    string Name { get; }

    /// <summary>One line for <c>--help</c> and listings.</summary>
    string Description { get; }

    /// <summary>Assembles the guest. Deterministic: the same source gives the same bytes.</summary>
    GuestImage Build();
}

/// <summary>
/// An assembled guest: the bytes to load at <see cref="GuestAssembler.LoadAddress"/>, plus the
/// named labels so that <c>--list</c> can print a readable disassembly (code vs. data).
/// </summary>
public sealed record GuestImage(byte[] Bytes, IReadOnlyList<GuestSymbol> Symbols);

/// <summary>A named label of an assembled guest, at a guest physical address.</summary>
public sealed record GuestSymbol(string Name, ulong Address, bool IsData);
