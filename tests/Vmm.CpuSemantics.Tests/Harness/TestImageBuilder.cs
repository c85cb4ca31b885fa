using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>
/// Builds a test image: boot sector (<see cref="BootSector"/>), then the harness, the stubs and one record per case.
/// </summary>
/// <remarks>
/// The harness is data driven, so a batch of thousands of cases stays small: for each case it copies the record's
/// data into the data area, loads EFLAGS (PUSH/POPFD), DS, ES, SS and all eight registers from the record (through FS,
/// which no case uses), and jumps to the case's stub. A stub is the case's code followed by a jump back; cases with
/// the same code share a stub. Back in the harness it stores the eight registers (MOV only, so the flags survive),
/// switches to its own stack, stores EFLAGS with PUSHFD, and sends the result slot and the data area on COM1
/// before it moves FS to the next record. Streaming each result as soon as it exists means a run that hangs or
/// crashes still says how far it got. IVT vectors 0-31 go to handlers that record the vector in the result slot and
/// continue at the same point as a stub, so a faulting case (#DE, #UD, …) is a result like any other. The harness
/// stays in plain real mode and uses only common instructions (no far jumps, no protected-mode switch), so that a CPU
/// still missing something fails in the case that needs it rather than in the harness.
/// </remarks>
public static class TestImageBuilder
{
    /// <summary>Written to isa-debug-exit after the last result: exit status (0x31 &lt;&lt; 1) | 1 = 99.</summary>
    public const byte CompletedExitValue = 0x31;

    /// <summary>Written to isa-debug-exit when the boot sector could not load the image (under a BIOS): status 253.</summary>
    public const byte LoadFailedExitValue = 0x7E;

    public static int CompletedExitStatus => (CompletedExitValue << 1) | 1;

    public static int LoadFailedExitStatus => (LoadFailedExitValue << 1) | 1;

    /// <summary>Exceptions 0-31 are recorded; hardware interrupts never come (IF stays 0).</summary>
    public const int HandledVectors = 32;

    /// <summary>Code and stubs must stay in CS = 0, below 64 KiB.</summary>
    public const int CodeLimit = 0x10000;

    /// <summary>Eight bytes right after the boot sector that tell the boot sector the whole image is in memory.</summary>
    public static ReadOnlySpan<byte> Signature => "CPUSIGv1"u8;

    /// <summary>The data length a batch of <paramref name="cases"/> needs: the longest initial data, whole dwords, at least 16 bytes.</summary>
    public static int DataLengthFor(IEnumerable<TestCase> cases) =>
        DataLengthFor(cases.Select(c => c.Initial.Data.Length).DefaultIfEmpty(0).Max());

    /// <summary>The data length for a batch whose longest initial data is <paramref name="longest"/> bytes.</summary>
    public static int DataLengthFor(int longest)
    {
        var length = Math.Max(16, (longest + 3) & ~3);
        return length <= MemoryMap.DataCapacity
            ? length
            : throw new ArgumentException($"a case has {longest} bytes of data, more than the {MemoryMap.DataCapacity} the data area holds");
    }

    /// <summary>Bytes of code a stub for <paramref name="testCase"/> takes (its code plus the way back).</summary>
    public static int StubSize(TestCase testCase) => testCase.Code.Length + (testCase.Kind == StubKind.Branch ? 3 + 6 + 3 : 3);

    public static TestImage Build(IReadOnlyList<TestCase> cases)
    {
        if (cases.Count == 0)
        {
            throw new ArgumentException("an image needs at least one case", nameof(cases));
        }

        var dataLength = DataLengthFor(cases);
        var stride = RecordLayout.Stride(dataLength);

        // Cases with the same code and kind share one stub.
        var stubs = new List<(byte[] Code, StubKind Kind)>();
        var stubOf = new int[cases.Count];
        var stubByKey = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < cases.Count; i++)
        {
            var key = $"{cases[i].Kind}:{Convert.ToHexString(cases[i].Code)}";
            if (!stubByKey.TryGetValue(key, out var stub))
            {
                stub = stubs.Count;
                stubs.Add((cases[i].Code, cases[i].Kind));
                stubByKey.Add(key, stub);
            }

            stubOf[i] = stub;
        }

        var (harness, addresses) = ImageAssembler.Build(MemoryMap.HarnessOrigin, image => EmitHarness(image, cases.Count, dataLength, stride, stubs));

        var codeEnd = MemoryMap.HarnessOrigin + harness.Length;
        if (codeEnd > CodeLimit)
        {
            throw new InvalidOperationException($"harness and {stubs.Count} stubs end at 0x{codeEnd:X}, past 64 KiB: use fewer distinct instructions per image");
        }

        var recordsStart = RecordsStart(codeEnd);
        var recordsEnd = recordsStart + cases.Count * stride;
        if (recordsEnd > MemoryMap.ImageLimit)
        {
            throw new InvalidOperationException($"{cases.Count} records of {stride} bytes end at 0x{recordsEnd:X}, past 0x{MemoryMap.ImageLimit:X}: use fewer cases per image");
        }

        var imageLength = (recordsEnd - MemoryMap.LoadAddress + BootSector.Size - 1) / BootSector.Size * BootSector.Size;
        var bytes = new byte[imageLength];
        BootSector.Build(imageLength / BootSector.Size - 1, Signature, LoadFailedExitValue).CopyTo(bytes, 0);
        harness.CopyTo(bytes, MemoryMap.HarnessOrigin - MemoryMap.LoadAddress);
        for (var i = 0; i < cases.Count; i++)
        {
            var record = bytes.AsSpan(recordsStart - MemoryMap.LoadAddress + i * stride, stride);
            WriteRecord(record, cases[i].Initial, (ushort)addresses[$"stub.{stubOf[i]}"], (uint)i, dataLength);
        }

        return new TestImage(bytes, cases, dataLength);
    }

    /// <summary>The byte a case's data area holds at <paramref name="offset"/> where the case did not choose one.</summary>
    public static byte DataFill(int offset) => (byte)(0xA5 + 0x3B * offset);

    private static int RecordsStart(int codeEnd) => (codeEnd + 15) & ~15;

    private static void WriteRecord(Span<byte> record, CaseState state, ushort stub, uint index, int dataLength)
    {
        for (var r = Gpr.Eax; r <= Gpr.Edi; r++)
        {
            BitConverter.TryWriteBytes(record[RecordLayout.RegisterOffset(r)..], state[r]);
        }

        BitConverter.TryWriteBytes(record[RecordLayout.Eflags..], state.Eflags);
        BitConverter.TryWriteBytes(record[RecordLayout.Ds..], state.Ds);
        BitConverter.TryWriteBytes(record[RecordLayout.Es..], state.Es);
        BitConverter.TryWriteBytes(record[RecordLayout.Ss..], state.Ss);
        BitConverter.TryWriteBytes(record[RecordLayout.Stub..], stub);
        BitConverter.TryWriteBytes(record[RecordLayout.Index..], index);
        var data = record.Slice(RecordLayout.Data, dataLength);
        for (var i = 0; i < dataLength; i++)
        {
            data[i] = i < state.Data.Length ? state.Data[i] : DataFill(i);
        }
    }

    private static void EmitHarness(ImageAssembler image, int caseCount, int dataLength, int stride, List<(byte[] Code, StubKind Kind)> stubs)
    {
        var a = image.Asm;
        const ushort slot = MemoryMap.ResultSlot;

        image.Bind("signature");
        a.db(Signature.ToArray());

        // Entry: nothing the BIOS (or vmm) left is trusted.
        image.Bind("main");
        a.cli();
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(fs, ax);
        a.mov(gs, ax);
        a.mov(ss, ax);
        a.mov(esp, (uint)MemoryMap.HarnessStackTop);
        a.cld();
        a.lidt(__[image.Addr("idtr")]);
        for (var vector = 0; vector < HandledVectors; vector++)
        {
            a.mov(__word_ptr[vector * 4], image.Addr($"exception.{vector}"));
            a.mov(__word_ptr[vector * 4 + 2], 0);
        }

        // FCR: FIFOs on, so one wait for THRE covers the next 16 bytes (the send routine's chunks).
        a.mov(dx, 0x3FA);
        a.mov(al, 0x07);
        a.@out(dx, al);
        a.mov(si, image.Addr("header"));
        a.mov(cx, ResultLayout.HeaderSize);
        a.call(image.L("send"));

        a.mov(ax, (ushort)(RecordsStart(image.Addr("harness.end") + 1) >> 4));
        a.mov(fs, ax);
        a.mov(__dword_ptr[image.Addr("remaining")], (uint)caseCount);

        // Set up the next case from its record (FS).
        image.Bind("case.next");
        a.cld();
        a.push(ds);
        a.push(es);
        a.mov(ax, fs);
        a.mov(ds, ax);
        a.mov(si, RecordLayout.Data);
        a.mov(ax, MemoryMap.DataSegment);
        a.mov(es, ax);
        a.xor(di, di);
        a.mov(cx, (ushort)(dataLength / 4));
        a.rep.movsd();
        a.pop(es);
        a.pop(ds);
        a.mov(__dword_ptr[slot + ResultLayout.Exception], 0);
        a.push(__dword_ptr.fs[RecordLayout.Eflags]);
        a.popfd();
        // From here to the stub nothing may change a flag: MOVs only.
        a.mov(ds, __word_ptr.fs[RecordLayout.Ds]);
        a.mov(es, __word_ptr.fs[RecordLayout.Es]);
        a.mov(ss, __word_ptr.fs[RecordLayout.Ss]);
        a.mov(esp, __dword_ptr.fs[RecordLayout.RegisterOffset(Gpr.Esp)]);
        a.mov(eax, __dword_ptr.fs[RecordLayout.RegisterOffset(Gpr.Eax)]);
        a.mov(ecx, __dword_ptr.fs[RecordLayout.RegisterOffset(Gpr.Ecx)]);
        a.mov(edx, __dword_ptr.fs[RecordLayout.RegisterOffset(Gpr.Edx)]);
        a.mov(ebx, __dword_ptr.fs[RecordLayout.RegisterOffset(Gpr.Ebx)]);
        a.mov(ebp, __dword_ptr.fs[RecordLayout.RegisterOffset(Gpr.Ebp)]);
        a.mov(esi, __dword_ptr.fs[RecordLayout.RegisterOffset(Gpr.Esi)]);
        a.mov(edi, __dword_ptr.fs[RecordLayout.RegisterOffset(Gpr.Edi)]);
        a.jmp(__word_ptr.fs[RecordLayout.Stub]);

        // Every stub and exception handler comes back here. Until PUSHFD: MOVs only, through GS (= 0), since the
        // case may have left any DS, ES, SS:SP.
        image.Bind("case.after");
        a.mov(__dword_ptr.gs[slot + ResultLayout.RegisterOffset(Gpr.Eax)], eax);
        a.mov(__dword_ptr.gs[slot + ResultLayout.RegisterOffset(Gpr.Ecx)], ecx);
        a.mov(__dword_ptr.gs[slot + ResultLayout.RegisterOffset(Gpr.Edx)], edx);
        a.mov(__dword_ptr.gs[slot + ResultLayout.RegisterOffset(Gpr.Ebx)], ebx);
        a.mov(__dword_ptr.gs[slot + ResultLayout.RegisterOffset(Gpr.Esp)], esp);
        a.mov(__dword_ptr.gs[slot + ResultLayout.RegisterOffset(Gpr.Ebp)], ebp);
        a.mov(__dword_ptr.gs[slot + ResultLayout.RegisterOffset(Gpr.Esi)], esi);
        a.mov(__dword_ptr.gs[slot + ResultLayout.RegisterOffset(Gpr.Edi)], edi);
        a.mov(ax, 0);
        a.mov(ss, ax);
        a.mov(esp, (uint)MemoryMap.HarnessStackTop);
        a.pushfd();
        a.pop(__dword_ptr.gs[slot + ResultLayout.Eflags]);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.cld();
        a.mov(__byte_ptr[slot + ResultLayout.Completion], ResultLayout.CompletionMarker);
        a.mov(eax, __dword_ptr.fs[RecordLayout.Index]);
        a.mov(__dword_ptr[slot + ResultLayout.Index], eax);
        a.mov(si, slot);
        a.mov(cx, ResultLayout.SlotSize);
        a.call(image.L("send"));
        a.mov(ax, MemoryMap.DataSegment);
        a.mov(ds, ax);
        a.xor(si, si);
        a.mov(cx, (ushort)dataLength);
        a.call(image.L("send"));
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.mov(ax, fs);
        a.add(ax, (ushort)(stride >> 4));
        a.mov(fs, ax);
        a.dec(__dword_ptr[image.Addr("remaining")]);
        a.jnz(image.L("case.next"));

        a.mov(si, image.Addr("trailer"));
        a.mov(cx, (ushort)ResultLayout.TrailerMagic.Length);
        a.call(image.L("send"));
        a.mov(al, CompletedExitValue);
        a.@out(0xF4, al);
        image.Bind("halt");
        a.cli();
        a.hlt();
        a.jmp(image.L("halt"));

        EmitSend(image);

        // A fault in a case: the CPU pushed FLAGS, CS, IP on the case's stack; record the vector and carry on.
        for (var vector = 0; vector < HandledVectors; vector++)
        {
            image.Bind($"exception.{vector}");
            a.mov(__byte_ptr.gs[slot + ResultLayout.Exception], (byte)(vector + 1));
            a.jmp(image.L("case.after"));
        }

        for (var k = 0; k < stubs.Count; k++)
        {
            var (code, kind) = stubs[k];
            image.Bind($"stub.{k}");
            a.db(code);
            // The way back is a raw 3-byte near jump: a branch case's code jumps exactly over it.
            var back = image.Addr($"stub.{k}") + code.Length;
            var displacement = (ushort)(image.Addr("case.after") - (back + 3));
            a.db(0xE9, (byte)displacement, (byte)(displacement >> 8));
            if (kind == StubKind.Branch)
            {
                a.mov(__byte_ptr.gs[slot + ResultLayout.BranchTaken], 1);
                a.jmp(image.L("case.after"));
            }
        }

        image.Bind("header");
        a.db(ResultLayout.HeaderMagic.ToArray());
        a.dd((uint)caseCount);
        a.dw((ushort)dataLength, (ushort)ResultLayout.SlotSize);
        image.Bind("trailer");
        a.db(ResultLayout.TrailerMagic.ToArray());
        image.Bind("remaining");
        a.dd(0);
        // The real-mode IVT: base 0, 256 vectors (the BIOS may have left something else in IDTR).
        image.Bind("idtr");
        a.dw(0x3FF);
        a.dd(0);
        image.Bind("harness.end");
        a.db(0);
    }

    /// <summary>
    /// send: writes CX bytes from DS:SI to COM1. With the FIFOs on, THRE set means 16 bytes may follow, so it waits for
    /// THRE once per 16 bytes and writes them with REP OUTSB. Preserves everything but SI, CX and the flags.
    /// </summary>
    private static void EmitSend(ImageAssembler image)
    {
        var a = image.Asm;
        image.Bind("send");
        a.push(ax);
        a.push(bx);
        a.push(dx);
        image.Bind("send.chunk");
        a.test(cx, cx);
        a.jz(image.L("send.done"));
        a.mov(dx, 0x3FD);
        image.Bind("send.wait");
        a.@in(al, dx);
        a.test(al, 0x20);
        a.jz(image.L("send.wait"));
        a.mov(bx, cx);
        a.cmp(bx, 16);
        a.jbe(image.L("send.some"));
        a.mov(bx, 16);
        image.Bind("send.some");
        a.sub(cx, bx);
        a.xchg(cx, bx);
        a.mov(dx, 0x3F8);
        a.rep.outsb();
        a.mov(cx, bx);
        a.jmp(image.L("send.chunk"));
        image.Bind("send.done");
        a.pop(dx);
        a.pop(bx);
        a.pop(ax);
        a.ret();
    }
}
