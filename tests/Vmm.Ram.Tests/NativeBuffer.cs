using System.Runtime.InteropServices;

namespace Vmm.Ram.Tests;

/// <summary>A page-aligned buffer outside the GC heap, as a source for UFFDIO_COPY.</summary>
internal sealed unsafe class NativeBuffer : IDisposable
{
    public NativeBuffer(ulong length, byte fill = 0)
    {
        Length = length;
        Address = (nint)NativeMemory.AlignedAlloc((nuint)length, 4096);
        Span.Fill(fill);
    }

    public nint Address { get; }

    public ulong Length { get; }

    public Span<byte> Span => new((void*)Address, checked((int)Length));

    public void Dispose() => NativeMemory.AlignedFree((void*)Address);
}
