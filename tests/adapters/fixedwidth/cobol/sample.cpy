      *****************************************************************
      * TEST RECORD WRITTEN AND READ BY SAMPLE.CBL (GNUCOBOL) AND BY
      * THE FIXEDWIDTH CODEC. DISPLAY ITEMS FIRST, SO THE PROGRAM CAN
      * CONVERT THEM TO EBCDIC WITH ONE INSPECT.
      *****************************************************************
       01  SAMPLE-REC.
           05  S-DISPLAY-PART.
               10  S-NAME          PIC X(10).
               10  S-ZONED-POS     PIC S9(3) OCCURS 10 TIMES.
               10  S-ZONED-NEG     PIC S9(3) OCCURS 10 TIMES.
               10  S-LEAD-SEP      PIC S9(5)V9 SIGN LEADING SEPARATE.
               10  S-TRAIL-SEP     PIC S9(5) SIGN TRAILING SEPARATE.
               10  S-LEAD-OVER     PIC S9(4) SIGN LEADING.
               10  S-UNSIGNED      PIC 9(6).
               10  S-KIND          PIC X.
                   88  S-IS-TEXT           VALUE 'T'.
                   88  S-IS-NUM            VALUE 'N'.
           05  S-PACKED-POS        PIC S9(7)V99 COMP-3.
           05  S-PACKED-NEG        PIC S9(7)V99 COMP-3.
           05  S-PACKED-UNS        PIC 9(5) COMP-3.
           05  S-BINARY            PIC S9(9) COMP.
           05  S-NATIVE            PIC S9(4) COMP-5.
           05  S-ITEMS             OCCURS 3 TIMES.
               10  S-ITEM-CODE     PIC X(2).
               10  S-ITEM-AMT      PIC S9(5)V99 COMP-3.
           05  S-TEXT-VIEW         PIC X(8).
           05  S-NUM-VIEW          REDEFINES S-TEXT-VIEW.
               10  S-NUM-A         PIC S9(7) COMP-3.
               10  S-NUM-B         PIC 9(4).
