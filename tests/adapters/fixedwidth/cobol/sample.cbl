      *****************************************************************
      * WRITES (MODE W) OR READS AND CHECKS (MODE R) TWO SAMPLE-REC
      * RECORDS WITH KNOWN VALUES. ARGUMENTS: MODE CODESET FILE, WHERE
      * CODESET IS EBCDIC (DISPLAY ITEMS CONVERTED TO CP037 IN THE
      * PROGRAM) OR ASCII. READ MODE DISPLAYS ONE LINE PER MISMATCH
      * AND "CHECKED N" AT THE END.
      *****************************************************************
       IDENTIFICATION DIVISION.
       PROGRAM-ID. SAMPLE.
       ENVIRONMENT DIVISION.
       INPUT-OUTPUT SECTION.
       FILE-CONTROL.
           SELECT DATA-FILE ASSIGN TO WS-FILE-NAME
               ORGANIZATION IS RECORD SEQUENTIAL
               FILE STATUS IS WS-STATUS.
       DATA DIVISION.
       FILE SECTION.
       FD  DATA-FILE.
           COPY "sample.cpy".
       WORKING-STORAGE SECTION.
       01  WS-ARGS                 PIC X(300).
       01  WS-MODE                 PIC X.
       01  WS-CODESET              PIC X(6).
       01  WS-FILE-NAME            PIC X(256).
       01  WS-STATUS               PIC XX.
       01  WS-I                    PIC 99.
       01  WS-REC-NO               PIC 99.
       01  WS-CHECKED              PIC 99 VALUE 0.
       01  WS-EOF                  PIC X VALUE 'N'.
       01  WS-ASCII PIC X(41)
               VALUE " 0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ{}+-".
       01  WS-EBCDIC-HEX.
           05  FILLER PIC X(11) VALUE X"40F0F1F2F3F4F5F6F7F8F9".
           05  FILLER PIC X(9)  VALUE X"C1C2C3C4C5C6C7C8C9".
           05  FILLER PIC X(9)  VALUE X"D1D2D3D4D5D6D7D8D9".
           05  FILLER PIC X(8)  VALUE X"E2E3E4E5E6E7E8E9".
           05  FILLER PIC X(4)  VALUE X"C0D04E60".
       01  WS-EBCDIC REDEFINES WS-EBCDIC-HEX PIC X(41).
           COPY "sample.cpy" REPLACING ==SAMPLE-REC== BY ==E-REC==.
       PROCEDURE DIVISION.
           ACCEPT WS-ARGS FROM COMMAND-LINE
           UNSTRING WS-ARGS DELIMITED BY ALL SPACE
               INTO WS-MODE WS-CODESET WS-FILE-NAME
           IF WS-MODE = 'W'
               PERFORM WRITE-FILE
           ELSE
               PERFORM CHECK-FILE
           END-IF
           STOP RUN.

       WRITE-FILE.
           OPEN OUTPUT DATA-FILE
           PERFORM VARYING WS-REC-NO FROM 1 BY 1 UNTIL WS-REC-NO > 2
               PERFORM BUILD-EXPECTED
               MOVE E-REC TO SAMPLE-REC
               IF WS-CODESET = 'EBCDIC'
                   PERFORM TO-EBCDIC
               END-IF
               WRITE SAMPLE-REC
           END-PERFORM
           CLOSE DATA-FILE.

       CHECK-FILE.
           OPEN INPUT DATA-FILE
           IF WS-STATUS NOT = '00'
               DISPLAY "OPEN FAILED " WS-STATUS
               STOP RUN
           END-IF
           MOVE 0 TO WS-REC-NO
           PERFORM UNTIL WS-EOF = 'Y'
               READ DATA-FILE
                   AT END MOVE 'Y' TO WS-EOF
                   NOT AT END
                       ADD 1 TO WS-REC-NO
                       IF WS-CODESET = 'EBCDIC'
                           PERFORM FROM-EBCDIC
                       END-IF
                       PERFORM BUILD-EXPECTED
                       PERFORM COMPARE-RECORD
                       ADD 1 TO WS-CHECKED
               END-READ
           END-PERFORM
           CLOSE DATA-FILE
           DISPLAY "CHECKED " WS-CHECKED.

       BUILD-EXPECTED.
           INITIALIZE E-REC
           IF WS-REC-NO = 1
               MOVE "ALPHA" TO S-NAME OF E-REC
               MOVE -12345.6 TO S-LEAD-SEP OF E-REC
               MOVE -4321 TO S-TRAIL-SEP OF E-REC
               MOVE -987 TO S-LEAD-OVER OF E-REC
               MOVE 654321 TO S-UNSIGNED OF E-REC
               MOVE 'T' TO S-KIND OF E-REC
               MOVE 1234567.89 TO S-PACKED-POS OF E-REC
               MOVE -7654321.09 TO S-PACKED-NEG OF E-REC
               MOVE 54321 TO S-PACKED-UNS OF E-REC
               MOVE -123456789 TO S-BINARY OF E-REC
               MOVE -300 TO S-NATIVE OF E-REC
               MOVE "TEXTVIEW" TO S-TEXT-VIEW OF E-REC
           ELSE
               MOVE "BETA" TO S-NAME OF E-REC
               MOVE 12345.6 TO S-LEAD-SEP OF E-REC
               MOVE 4321 TO S-TRAIL-SEP OF E-REC
               MOVE 987 TO S-LEAD-OVER OF E-REC
               MOVE 0 TO S-UNSIGNED OF E-REC
               MOVE 'N' TO S-KIND OF E-REC
               MOVE 0.01 TO S-PACKED-POS OF E-REC
               MOVE -0.01 TO S-PACKED-NEG OF E-REC
               MOVE 0 TO S-PACKED-UNS OF E-REC
               MOVE 123456789 TO S-BINARY OF E-REC
               MOVE 300 TO S-NATIVE OF E-REC
               MOVE -1234567 TO S-NUM-A OF E-REC
               MOVE 4321 TO S-NUM-B OF E-REC
           END-IF
           PERFORM VARYING WS-I FROM 1 BY 1 UNTIL WS-I > 10
               COMPUTE S-ZONED-POS OF E-REC (WS-I) = 99 + WS-I
               COMPUTE S-ZONED-NEG OF E-REC (WS-I) = 0 - (199 + WS-I)
           END-PERFORM
           MOVE "AA" TO S-ITEM-CODE OF E-REC (1)
           MOVE 1.5 TO S-ITEM-AMT OF E-REC (1)
           MOVE "BB" TO S-ITEM-CODE OF E-REC (2)
           MOVE -2.25 TO S-ITEM-AMT OF E-REC (2)
           MOVE "CC" TO S-ITEM-CODE OF E-REC (3)
           MOVE 0 TO S-ITEM-AMT OF E-REC (3).

       COMPARE-RECORD.
           IF S-NAME OF SAMPLE-REC NOT = S-NAME OF E-REC
               DISPLAY "MISMATCH " WS-REC-NO " S-NAME" END-IF
           PERFORM VARYING WS-I FROM 1 BY 1 UNTIL WS-I > 10
               IF S-ZONED-POS OF SAMPLE-REC (WS-I)
                       NOT = S-ZONED-POS OF E-REC (WS-I)
                   DISPLAY "MISMATCH " WS-REC-NO " S-ZONED-POS " WS-I
               END-IF
               IF S-ZONED-NEG OF SAMPLE-REC (WS-I)
                       NOT = S-ZONED-NEG OF E-REC (WS-I)
                   DISPLAY "MISMATCH " WS-REC-NO " S-ZONED-NEG " WS-I
               END-IF
           END-PERFORM
           IF S-LEAD-SEP OF SAMPLE-REC NOT = S-LEAD-SEP OF E-REC
               DISPLAY "MISMATCH " WS-REC-NO " S-LEAD-SEP" END-IF
           IF S-TRAIL-SEP OF SAMPLE-REC NOT = S-TRAIL-SEP OF E-REC
               DISPLAY "MISMATCH " WS-REC-NO " S-TRAIL-SEP" END-IF
           IF S-LEAD-OVER OF SAMPLE-REC NOT = S-LEAD-OVER OF E-REC
               DISPLAY "MISMATCH " WS-REC-NO " S-LEAD-OVER" END-IF
           IF S-UNSIGNED OF SAMPLE-REC NOT = S-UNSIGNED OF E-REC
               DISPLAY "MISMATCH " WS-REC-NO " S-UNSIGNED" END-IF
           IF S-KIND OF SAMPLE-REC NOT = S-KIND OF E-REC
               DISPLAY "MISMATCH " WS-REC-NO " S-KIND" END-IF
           IF S-PACKED-POS OF SAMPLE-REC NOT = S-PACKED-POS OF E-REC
               DISPLAY "MISMATCH " WS-REC-NO " S-PACKED-POS" END-IF
           IF S-PACKED-NEG OF SAMPLE-REC NOT = S-PACKED-NEG OF E-REC
               DISPLAY "MISMATCH " WS-REC-NO " S-PACKED-NEG" END-IF
           IF S-PACKED-UNS OF SAMPLE-REC NOT = S-PACKED-UNS OF E-REC
               DISPLAY "MISMATCH " WS-REC-NO " S-PACKED-UNS" END-IF
           IF S-BINARY OF SAMPLE-REC NOT = S-BINARY OF E-REC
               DISPLAY "MISMATCH " WS-REC-NO " S-BINARY" END-IF
           IF S-NATIVE OF SAMPLE-REC NOT = S-NATIVE OF E-REC
               DISPLAY "MISMATCH " WS-REC-NO " S-NATIVE" END-IF
           PERFORM VARYING WS-I FROM 1 BY 1 UNTIL WS-I > 3
               IF S-ITEM-CODE OF SAMPLE-REC (WS-I)
                       NOT = S-ITEM-CODE OF E-REC (WS-I)
                   DISPLAY "MISMATCH " WS-REC-NO " S-ITEM-CODE " WS-I
               END-IF
               IF S-ITEM-AMT OF SAMPLE-REC (WS-I)
                       NOT = S-ITEM-AMT OF E-REC (WS-I)
                   DISPLAY "MISMATCH " WS-REC-NO " S-ITEM-AMT " WS-I
               END-IF
           END-PERFORM
           IF S-IS-TEXT OF SAMPLE-REC
               IF S-TEXT-VIEW OF SAMPLE-REC NOT = S-TEXT-VIEW OF E-REC
                   DISPLAY "MISMATCH " WS-REC-NO " S-TEXT-VIEW" END-IF
           ELSE
               IF S-NUM-A OF SAMPLE-REC NOT = S-NUM-A OF E-REC
                   DISPLAY "MISMATCH " WS-REC-NO " S-NUM-A" END-IF
               IF S-NUM-B OF SAMPLE-REC NOT = S-NUM-B OF E-REC
                   DISPLAY "MISMATCH " WS-REC-NO " S-NUM-B" END-IF
           END-IF.

       TO-EBCDIC.
           IF S-IS-TEXT OF SAMPLE-REC
               INSPECT S-TEXT-VIEW OF SAMPLE-REC
                   CONVERTING WS-ASCII TO WS-EBCDIC
           ELSE
               INSPECT S-NUM-B OF SAMPLE-REC
                   CONVERTING WS-ASCII TO WS-EBCDIC
           END-IF
           INSPECT S-DISPLAY-PART OF SAMPLE-REC
               CONVERTING WS-ASCII TO WS-EBCDIC
           PERFORM VARYING WS-I FROM 1 BY 1 UNTIL WS-I > 3
               INSPECT S-ITEM-CODE OF SAMPLE-REC (WS-I)
                   CONVERTING WS-ASCII TO WS-EBCDIC
           END-PERFORM.

       FROM-EBCDIC.
           INSPECT S-DISPLAY-PART OF SAMPLE-REC
               CONVERTING WS-EBCDIC TO WS-ASCII
           PERFORM VARYING WS-I FROM 1 BY 1 UNTIL WS-I > 3
               INSPECT S-ITEM-CODE OF SAMPLE-REC (WS-I)
                   CONVERTING WS-EBCDIC TO WS-ASCII
           END-PERFORM
           IF S-IS-TEXT OF SAMPLE-REC
               INSPECT S-TEXT-VIEW OF SAMPLE-REC
                   CONVERTING WS-EBCDIC TO WS-ASCII
           ELSE
               INSPECT S-NUM-B OF SAMPLE-REC
                   CONVERTING WS-EBCDIC TO WS-ASCII
           END-IF.
